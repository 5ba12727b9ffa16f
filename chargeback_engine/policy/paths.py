"""Where a policy may point: files it names stay inside its own folder.

Policies arrive through pull requests, so a ``file:`` in one is untrusted input: without
this check ``../../secrets.csv`` or ``/etc/passwd`` would be read, and a parse error would
echo the file. A path is resolved (``..`` and symlinks followed) before it is compared, and
it must land inside the policy's folder or inside one of the roots an operator allows
explicitly with :data:`ROOTS_VARIABLE` (``os.pathsep``-separated, like ``PATH``).

Validation and the run both call :func:`contained_path`, so they can never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

from chargeback_engine.errors import InputError

#: Environment variable naming extra folders that policy files may read from.
ROOTS_VARIABLE = "CHARGEBACK_POLICY_ROOTS"


def allowed_roots() -> list[Path]:
    """The folders :data:`ROOTS_VARIABLE` allows, resolved."""
    return [Path(r).resolve() for r in os.environ.get(ROOTS_VARIABLE, "").split(os.pathsep) if r.strip()]


def beside_policy(policy_file: str | Path | None, written: str) -> Path:
    """The path ``written`` in the policy at ``policy_file`` names: relative to the policy's
    folder (to the working directory for a policy that has no file)."""
    return (Path(policy_file).parent if policy_file else Path()) / written


def contained_path(policy_file: str | Path | None, written: str) -> Path:
    """:func:`beside_policy`, for a file the policy reads; :class:`InputError` if it resolves
    outside the policy's folder and every allowed root."""
    folder = Path(policy_file).parent if policy_file else Path.cwd()
    path = beside_policy(policy_file, written)
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in (folder.resolve(), *allowed_roots())):
        raise InputError(
            f"file {written!r} is outside the policy's folder ({folder}); policies may only read "
            f"files beside them, or under a folder listed in {ROOTS_VARIABLE}"
        )
    return path
