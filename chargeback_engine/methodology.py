"""The allocation methodology in plain language, written from the policy itself.

Stakeholders sign off a methodology before chargeback starts. Written by hand it drifts
from the policy the engine runs; written from the policy it cannot: every rule in the
order the engine tries them, what it matches, how it splits with a worked example on a
1,000 line (computed with the engine's own largest-remainder split), the shared-cost
stages, the rounding rule, and the policy version and content hash that runs are stamped
with. One document model renders as Markdown (for a pull request) and as HTML (to print
and sign).
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chargeback_engine import display
from chargeback_engine.money import minor_units, split
from chargeback_engine.policy.policy_model import AllocationSpec, Policy, PolicySet

FORMATS = ("markdown", "html")
EXAMPLE = Decimal(1000)


@dataclass(frozen=True)
class Block:
    """A heading (level 1 to 3), a paragraph, a bullet list or a table; text may hold `code` spans."""

    kind: str  # h1 | h2 | h3 | p | ul | table
    text: str = ""
    items: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()


def methodology(policies: PolicySet) -> list[Block]:
    """The document for every policy in the set, in effective order."""
    blocks: list[Block] = []
    for policy in sorted(policies.policies, key=lambda p: p.effective_from):
        blocks.extend(_policy(policy))
    return blocks


def render(blocks: Sequence[Block], fmt: str) -> str:
    return _markdown(blocks) if fmt == "markdown" else _html(blocks)


def methodology_diff(base: PolicySet, head: PolicySet) -> str:
    """A unified diff of the two methodologies in Markdown: what a reviewer signs off changing."""
    before, after = (_markdown(methodology(p)).splitlines(keepends=True) for p in (base, head))
    return "".join(difflib.unified_diff(before, after, "methodology (base)", "methodology (head)"))


# --- the document ------------------------------------------------------------------------------


def _policy(policy: Policy) -> list[Block]:
    names = {cc.id: cc.name for cc in policy.cost_centers}
    until = f" until {policy.effective_until}" if policy.effective_until else ""
    blocks = [
        Block("h1", f"Allocation methodology: {policy.name} {policy.version}"),
        Block(
            "p",
            f"Policy `{policy.name}` version `{policy.version}`, content hash `{policy.content_hash}`, "
            f"effective from {policy.effective_from}{until}. Every allocated line carries this version and "
            f"hash, so any figure can be traced to the text below.",
        ),
        Block(
            "p",
            f"Costs are read from the `{policy.cost_column}` column, in {policy.currency}. Each line goes to "
            f"the first rule below that matches it, in this order; a line no rule matches goes to "
            f"`{policy.unallocated}` ({names.get(policy.unallocated, 'unallocated')}).",
        ),
        Block("h2", "Cost centers"),
        Block(
            "table",
            rows=(
                ("Id", "Name", "Mode", "GL account"),
                *(
                    (cc.id, cc.name, cc.mode + (", shared pool" if cc.shared else ""), cc.gl_account or "-")
                    for cc in policy.cost_centers
                ),
            ),
        ),
        Block("h2", "Rules, in the order they are tried"),
    ]
    written = {r.get("id"): r for r in policy.document.get("spec", {}).get("rules", []) if isinstance(r, Mapping)}
    for number, rule in enumerate(policy.rules, start=1):
        when = written.get(rule.id, {}).get("when")
        blocks += [
            Block("h3", f"{number}. Rule `{rule.id}` (priority {rule.priority})"),
            *([Block("p", rule.description)] if rule.description else []),
            Block("p", f"**Matches** {_condition(when) if when else 'every line'}."),
            Block("p", f"**Splits** {_method(rule.allocate, policy, names)}."),
            Block("p", f"**Worked example:** {_example(rule.allocate, policy, names)}"),
        ]
    blocks.append(Block("h2", "Shared-cost stages"))
    if not policy.stages:
        blocks.append(Block("p", "None: every cost center keeps what the rules give it."))
    for number, stage in enumerate(policy.stages, start=1):
        blocks += [
            Block("h3", f"Stage {number}: pool `{stage.pool}` ({names.get(stage.pool, stage.pool)})"),
            Block(
                "p",
                f"After the rules (and the stages before this one), everything in `{stage.pool}` is "
                f"redistributed: {_method(stage.allocate, policy, names)}.",
            ),
            Block("p", f"**Worked example:** {_example(stage.allocate, policy, names)}"),
        ]
    blocks += [
        Block("h2", "Rounding"),
        Block(
            "ul",
            items=(
                "Every line is split exactly, at the precision of the ledger, by the largest-remainder method: each "
                "part is rounded down, and the units left over go one each to the largest remainders (ties to the cost "
                "center whose id sorts first). The parts always add up to the line, to the last digit.",
                "Credits and refunds (negative lines) split the same way, mirrored.",
                f"Invoices round each cost center's total to the currency's minor unit ({policy.currency}: "
                f"{minor_units(policy.currency)} digits) by the same method, so the month adds up to the cent.",
            ),
        ),
    ]
    return blocks


def _condition(when: Mapping[str, Any]) -> str:
    parts = []
    for name, spec in when.items():
        if name == "any":
            parts.append("any of: " + "; or ".join(f"({_condition(c)})" for c in spec))
        elif name == "all":
            parts.append(" and ".join(f"({_condition(c)})" for c in spec))
        elif name == "not":
            parts.append(f"not ({_condition(spec)})")
        else:
            parts.append(_field(name, spec))
    return " and ".join(parts)


def _field(name: str, spec: Any) -> str:
    what = f"tag `{name.removeprefix('tags.')}`" if name.startswith("tags.") else f"`{name}`"
    if not isinstance(spec, Mapping):
        return f"{what} is `{spec}`"
    ((op, operand),) = spec.items()
    if op == "equals":
        return f"{what} is `{operand}`"
    if op in ("in", "not_in"):
        values = ", ".join(f"`{v}`" for v in operand)
        return f"{what} is {'one' if op == 'in' else 'none'} of {values}"
    if op == "exists":
        return f"{what} is {'present' if operand else 'absent'}"
    return f"{what} matches the pattern `{operand}`"


def _method(spec: AllocationSpec, policy: Policy, names: Mapping[str, str]) -> str:
    p = spec.params

    def label(cc: str) -> str:
        return f"`{cc}` ({names[cc]})" if cc in names else f"`{cc}`"

    fallback = {"even": "are split evenly among the targets", "unallocated": f"go to `{policy.unallocated}`"}
    if spec.method == "direct":
        return f"all of it to {label(p['cost_center'])}"
    if spec.method == "fixed":
        total = sum((Decimal(str(w)) for w in p["splits"].values()), Decimal(0))
        return "by a fixed agreement: " + ", ".join(
            f"{label(cc)} {display.share(Decimal(str(w)) / total)}" for cc, w in p["splits"].items()
        )
    if spec.method == "even":
        among = p.get("among")
        return "evenly among " + (
            ", ".join(label(cc) for cc in among)
            if among
            else "every consumer (each cost center that is neither a shared pool nor unallocated)"
        )
    if spec.method == "tag":
        keys = ", then ".join(f"`{k}`" for k in p["keys"])
        mapped = (
            f"; tag values that are team names are mapped to cost centers ({len(p['map'])} names)"
            if p.get("map")
            else ""
        )
        return (
            f"to the cost center named by the line's tag {keys} (the first present){mapped}; when none names a "
            f"cost center, to {label(p.get('fallback', policy.unallocated))}"
        )
    if spec.method == "proportional":
        basis = (
            f"the `{p['driver']}` driver's quantity per cost center in the same period"
            if "driver" in p
            else "each cost center's own direct cost in the same period (after every other line is allocated)"
        )
        among = f", among {', '.join(label(cc) for cc in p['among'])}" if p.get("among") else ""
        counted = f", counting only lines where {_condition(p['filter'])}" if p.get("filter") else ""
        zero = fallback.get(p.get("fallback", "unallocated"), "")
        return f"in proportion to {basis}{among}{counted}; if every weight is zero, the amounts {zero}"
    if spec.method == "tiered":
        tiers = "; ".join(
            f"`{value}`: {_method(AllocationSpec.from_document(t), policy, names)}" for value, t in p["tiers"].items()
        )
        default = p.get("default")
        rest = f"; any other value: {_method(AllocationSpec.from_document(default), policy, names)}" if default else ""
        return f"by the line's `{p['by']}`: {tiers}{rest}"
    if spec.method == "amortized":
        then = spec.nested()
        after = f", each month {_method(then, policy, names)}" if then else ""
        return f"spread evenly over {p['months']} months from the charge's month{after}"
    params = ", ".join(f"`{k}: {v}`" for k, v in p.items())
    return f"with the `{spec.method}` method ({params or 'no parameters'})"


def _example(spec: AllocationSpec, policy: Policy, names: Mapping[str, str]) -> str:
    """What a line of 1,000 in the policy's currency becomes, split by the engine's own largest remainder."""
    line = display.money(EXAMPLE, policy.currency)
    digits = minor_units(policy.currency)
    p = spec.params

    def parts(weights: Mapping[str, Decimal]) -> str:
        amounts = split(EXAMPLE, list(weights.values()), digits)
        return ", ".join(f"`{cc}` {display.money(a, policy.currency)}" for cc, a in zip(weights, amounts))

    consumers = [cc.id for cc in policy.cost_centers if not cc.shared and cc.id != policy.unallocated]
    if spec.method == "direct":
        return f"a {line} line gives `{p['cost_center']}` {line}."
    if spec.method == "fixed":
        return f"a {line} line gives {parts({cc: Decimal(str(w)) for cc, w in p['splits'].items()})}."
    if spec.method == "even":
        among = list(p.get("among") or consumers)
        return f"a {line} line gives {parts(dict.fromkeys(among, Decimal(1)))}."
    if spec.method == "tag":
        value, target = next(iter(p["map"].items())) if p.get("map") else (consumers[0], consumers[0])
        return (
            f"a {line} line tagged `{p['keys'][0]}: {value}` gives `{target}` {line}; a line with none of the "
            f"tags gives `{p.get('fallback', policy.unallocated)}` {line}."
        )
    if spec.method == "proportional":
        first, second = (list(p.get("among") or consumers) * 2)[:2]
        if "driver" in p:
            unit = policy.document.get("spec", {}).get("drivers", {}).get(p["driver"], {}).get("unit", "units")
            had = f"`{first}` had 3 {unit} of `{p['driver']}` and `{second}` had 1"
        else:
            had = (
                f"`{first}` had {display.money(3 * EXAMPLE, policy.currency)} of direct cost and `{second}` "
                f"{display.money(EXAMPLE, policy.currency)}"
            )
        return f"if {had}, a {line} line would give {parts({first: Decimal(3), second: Decimal(1)})}."
    if spec.method == "tiered":
        value, tier = next(iter(p["tiers"].items()))
        inner = _example(AllocationSpec.from_document(tier), policy, names)
        return f"for a line whose `{p['by']}` is `{value}`: {inner}"
    if spec.method == "amortized":
        months = int(p["months"])
        monthly = split(EXAMPLE, [Decimal(1)] * months, digits)
        low, high = (display.money(m, policy.currency) for m in (min(monthly), max(monthly)))
        spread = low if low == high else f"{low} to {high}"
        then = spec.nested()
        after = f" Each month's part is then split: {_example(then, policy, names)}" if then else ""
        return f"a {line} purchase becomes {months} monthly parts of {spread}, adding up to {line}.{after}"
    return f"a {line} line is split as the `{spec.method}` method decides."


# --- rendering ---------------------------------------------------------------------------------


def _markdown(blocks: Sequence[Block]) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out += ["#" * int(b.kind[1]) + " " + b.text, ""]
        elif b.kind == "p":
            out += [b.text, ""]
        elif b.kind == "ul":
            out += [*(f"- {item}" for item in b.items), ""]
        else:
            header, *rows = b.rows

            def cell(c: str) -> str:
                return c.replace("|", "\\|")

            out += [
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
                *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows),
                "",
            ]
    return "\n".join(out)


def _inline(text: str) -> str:
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


def _html(blocks: Sequence[Block]) -> str:
    title = next((b.text for b in blocks if b.kind == "h1"), "Allocation methodology")
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "ul":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        else:
            header, *rows = b.rows
            body.append(
                "<table><tr>"
                + "".join(f"<th>{_inline(h)}</th>" for h in header)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in rows)
                + "</table>"
            )
    style = (
        "body{font:15px/1.5 Georgia,serif;max-width:48em;margin:2em auto;color:#1f2933}"
        "code{font:13px ui-monospace,monospace;background:#f0f4f8;padding:0 3px}"
        "table{border-collapse:collapse}td,th{border:1px solid #cbd2d9;padding:3px 8px;text-align:left}"
        "h3{margin-top:1.6em}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{style}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
