"""A seeded synthetic FOCUS month: the benchmark's input and the bundled sample data.

The month looks like an AWS organisation's bill: sub-accounts under a few billing
accounts, resources that live in one account and one service, usage lines per resource
and day, monthly support fees, a one-time reserved-instance purchase per billing account,
and credits. Tags are what real estates look like: about 15% of resources carry none,
others miss keys, a few spell keys differently (``CostCenter``, `` Team ``) or write a
boolean or a number instead of a string.

Everything is vectorised with numpy and pyarrow and written in row groups, so a month of
ten million lines costs seconds and a bounded amount of memory. The catalogue (accounts,
resources, their tags) comes from the seed alone, and each chunk of line items from the
seed and its chunk number, so the same shape always gives the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from chargeback_engine.focus import COST_TABLE_SCHEMA, MONEY, QUANTITY, TIMESTAMP
from chargeback_engine.periods import Period

#: The benchmark month's seed and period.
DEFAULT_SEED = 20261001
DEFAULT_PERIOD = Period(2026, 10)

#: Lines generated (and written as one Parquet row group) at a time.
CHUNK_ROWS = 1_000_000

#: None as numpy's object scalar, for np.where (whose signature takes no bare None).
_NONE = np.array(None, dtype=object)

# (ServiceName, ServiceCategory, ResourceType, ConsumedUnit, resource id prefix)
SERVICES: tuple[tuple[str, str, str, str, str], ...] = (
    ("Amazon EC2", "Compute", "Instance", "Hours", "ec2:instance/i-"),
    ("Amazon RDS", "Databases", "DBInstance", "Hours", "rds:db:db-"),
    ("Amazon S3", "Storage", "Bucket", "GB-Mo", "s3:::bucket-"),
    ("AWS Lambda", "Compute", "Function", "Requests", "lambda:function:fn-"),
    ("Amazon Elastic Kubernetes Service", "Compute", "Cluster", "Hours", "eks:cluster/eks-"),
    ("Amazon DynamoDB", "Databases", "Table", "ReadRequestUnits", "dynamodb:table/tbl-"),
    ("Amazon CloudFront", "Networking", "Distribution", "GB", "cloudfront::distribution/E"),
    ("Amazon Virtual Private Cloud", "Networking", "NatGateway", "Hours", "ec2:natgateway/nat-"),
    ("Amazon CloudWatch", "Management and Governance", "LogGroup", "GB", "logs:log-group:lg-"),
    ("Amazon ElastiCache", "Databases", "CacheCluster", "Hours", "elasticache:cluster:ec-"),
    ("Amazon Simple Queue Service", "Integration", "Queue", "Requests", "sqs:queue-"),
    ("Amazon Elastic Block Store", "Storage", "Volume", "GB-Mo", "ec2:volume/vol-"),
    ("Amazon Redshift", "Analytics", "Cluster", "Hours", "redshift:cluster:rs-"),
    ("Amazon OpenSearch Service", "Analytics", "Domain", "Hours", "es:domain/os-"),
    ("Amazon Kinesis", "Analytics", "Stream", "ShardHours", "kinesis:stream/ks-"),
    ("Amazon Athena", "Analytics", "WorkGroup", "TB", "athena:workgroup/wg-"),
    ("AWS Glue", "Analytics", "Job", "DPU-Hours", "glue:job/job-"),
    ("Amazon SageMaker", "AI and Machine Learning", "Endpoint", "Hours", "sagemaker:endpoint/ep-"),
    ("Amazon Bedrock", "AI and Machine Learning", "Model", "Tokens", "bedrock:model/m-"),
    ("Amazon Elastic File System", "Storage", "FileSystem", "GB-Mo", "elasticfilesystem:file-system/fs-"),
    ("Amazon Simple Notification Service", "Integration", "Topic", "Requests", "sns:topic-"),
    ("Amazon API Gateway", "Networking", "Api", "Requests", "apigateway:restapis/api-"),
    ("Elastic Load Balancing", "Networking", "LoadBalancer", "Hours", "elasticloadbalancing:loadbalancer/lb-"),
    ("Amazon Route 53", "Networking", "HostedZone", "Queries", "route53:hostedzone/Z"),
    ("AWS Key Management Service", "Security", "Key", "Requests", "kms:key/k-"),
    ("AWS Secrets Manager", "Security", "Secret", "Secrets", "secretsmanager:secret:s-"),
    ("Amazon GuardDuty", "Security", "Detector", "Events", "guardduty:detector/gd-"),
    ("AWS WAF", "Security", "WebACL", "Requests", "wafv2:webacl/waf-"),
    ("Amazon Elastic Container Registry", "Storage", "Repository", "GB-Mo", "ecr:repository/repo-"),
    ("Amazon Elastic Container Service", "Compute", "Service", "vCPU-Hours", "ecs:service/svc-"),
    ("AWS Fargate", "Compute", "Task", "vCPU-Hours", "ecs:task/task-"),
    ("Amazon Aurora", "Databases", "DBCluster", "Hours", "rds:cluster:aurora-"),
    ("Amazon DocumentDB", "Databases", "DBCluster", "Hours", "rds:cluster:docdb-"),
    ("Amazon Neptune", "Databases", "DBCluster", "Hours", "rds:cluster:neptune-"),
    ("Amazon MQ", "Integration", "Broker", "Hours", "mq:broker:mq-"),
    ("Amazon Managed Streaming for Apache Kafka", "Analytics", "Cluster", "Hours", "kafka:cluster/msk-"),
    ("AWS Step Functions", "Integration", "StateMachine", "Transitions", "states:stateMachine:sm-"),
    ("Amazon EventBridge", "Integration", "EventBus", "Events", "events:event-bus/bus-"),
    ("AWS CodeBuild", "Developer Tools", "Project", "Minutes", "codebuild:project/cb-"),
    ("AWS CodePipeline", "Developer Tools", "Pipeline", "Pipelines", "codepipeline:pl-"),
    ("Amazon WorkSpaces", "End User Computing", "Workspace", "Hours", "workspaces:workspace/ws-"),
    ("AWS Backup", "Storage", "BackupVault", "GB-Mo", "backup:backup-vault:bv-"),
    ("Amazon FSx", "Storage", "FileSystem", "GB-Mo", "fsx:file-system/fsx-"),
    ("AWS Transfer Family", "Storage", "Server", "Hours", "transfer:server/srv-"),
    ("Amazon QuickSight", "Analytics", "User", "Users", "quicksight:user/qs-"),
    ("AWS Config", "Management and Governance", "ConfigRule", "Evaluations", "config:config-rule/cr-"),
    ("AWS CloudTrail", "Management and Governance", "Trail", "Events", "cloudtrail:trail/ct-"),
    ("AWS Systems Manager", "Management and Governance", "Parameter", "Requests", "ssm:parameter/p-"),
    ("Amazon Cognito", "Security", "UserPool", "MAUs", "cognito-idp:userpool/up-"),
    ("Amazon Simple Email Service", "Integration", "Identity", "Messages", "ses:identity/id-"),
    ("AWS Direct Connect", "Networking", "Connection", "Port-Hours", "directconnect:dxcon/dx-"),
    ("AWS Global Accelerator", "Networking", "Accelerator", "Hours", "globalaccelerator::accelerator/ga-"),
    ("Amazon Timestream", "Databases", "Database", "GB", "timestream:database/ts-"),
    ("Amazon Keyspaces", "Databases", "Keyspace", "ReadRequestUnits", "cassandra:keyspace/ks-"),
    ("AWS Elemental MediaConvert", "Media", "Queue", "Minutes", "mediaconvert:queues/mc-"),
    ("Amazon Transcribe", "AI and Machine Learning", "Job", "Minutes", "transcribe:job/tr-"),
    ("Amazon Rekognition", "AI and Machine Learning", "Collection", "Images", "rekognition:collection/rk-"),
    ("Amazon Comprehend", "AI and Machine Learning", "Endpoint", "Units", "comprehend:endpoint/cp-"),
    ("AWS IoT Core", "Internet of Things", "Thing", "Messages", "iot:thing/thing-"),
)
SUPPORT_SERVICE = ("AWS Support", "Management and Governance")

REGIONS = (
    ("us-east-1", "US East (N. Virginia)"),
    ("us-west-2", "US West (Oregon)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
)

#: Cost centers, the teams that belong to them, and the projects those teams run.
COST_CENTERS = (
    ("CC-1001", "Payments"),
    ("CC-1002", "Checkout"),
    ("CC-1003", "Search"),
    ("CC-1004", "Data Platform"),
    ("CC-1005", "Machine Learning"),
    ("CC-1006", "Web"),
    ("CC-1007", "Mobile"),
    ("CC-1008", "Security"),
    ("CC-1009", "Finance IT"),
    ("CC-1010", "Growth"),
    ("CC-9000", "Platform (shared)"),
    ("CC-9001", "Shared Services (shared)"),
)
TEAMS = (
    ("payments", "CC-1001"),
    ("checkout", "CC-1002"),
    ("search", "CC-1003"),
    ("data-platform", "CC-1004"),
    ("ml", "CC-1005"),
    ("web", "CC-1006"),
    ("mobile", "CC-1007"),
    ("security", "CC-1008"),
    ("finance-it", "CC-1009"),
    ("growth", "CC-1010"),
    ("platform", "CC-9000"),
)
PROJECTS = (
    ("ledger", "payments"),
    ("fraud-detection", "payments"),
    ("cart", "checkout"),
    ("pricing", "checkout"),
    ("catalog-search", "search"),
    ("recommendations", "ml"),
    ("lakehouse", "data-platform"),
    ("etl", "data-platform"),
    ("storefront", "web"),
    ("ios-app", "mobile"),
    ("android-app", "mobile"),
    ("siem", "security"),
    ("erp-bridge", "finance-it"),
    ("experiments", "growth"),
    ("k8s-platform", "platform"),
    ("observability", "platform"),
)
ENVIRONMENTS = ("production", "staging", "development", "sandbox")

_ACCOUNT_NAMES = ("acme-prod", "acme-staging", "acme-dev", "acme-data", "acme-sandbox", "acme-security")


@dataclass(frozen=True)
class Shape:
    """What the month looks like; the defaults are the benchmark's shape."""

    rows: int
    seed: int = DEFAULT_SEED
    period: Period = DEFAULT_PERIOD
    billing_accounts: int = 3
    accounts: int = 200
    services: int = 60
    resources: int = 50_000
    untagged_share: float = 0.15
    credit_share: float = 0.015
    #: Median daily cost of one resource, in micro-dollars (costs are log-normal around it).
    resource_day_micros: int = 440_000

    def __post_init__(self) -> None:
        if not 1 <= self.services <= len(SERVICES) + 1:
            raise ValueError(f"services must be between 1 and {len(SERVICES) + 1}")
        if self.billing_accounts > self.accounts:
            raise ValueError("every billing account needs at least one sub-account")
        if self.rows < self.fixed_rows + 1:
            raise ValueError(f"a month of this shape needs at least {self.fixed_rows + 1} rows")

    @property
    def fixed_rows(self) -> int:
        """Support fees (one per sub-account) and RI purchases (one per billing account)."""
        return self.accounts + self.billing_accounts


#: The bundled sample month, ``policies/data/acme-focus-2026-10.csv``.
SAMPLE_SHAPE = Shape(
    rows=600, seed=2026_10, billing_accounts=2, accounts=3, services=13, resources=60, resource_day_micros=25_000_000
)


@dataclass(frozen=True)
class _Catalog:
    """Everything that is per account or per resource, built once from the seed."""

    account_ids: pa.Array
    account_names: pa.Array
    account_billing: np.ndarray  # account -> billing account index
    billing_ids: pa.Array
    billing_names: pa.Array
    resource_account: np.ndarray
    resource_service: np.ndarray
    resource_region: np.ndarray
    resource_ids: pa.Array
    resource_names: pa.Array
    resource_tags: pa.Array
    resource_weight: np.ndarray  # probability of a line item belonging to the resource
    resource_micros: np.ndarray  # typical daily cost of the resource, in micro-dollars


def _catalog(shape: Shape) -> _Catalog:
    rng = np.random.default_rng([shape.seed, 0])
    billing_ids = [f"{rng.integers(10**11, 10**12)}" for _ in range(shape.billing_accounts)]
    account_ids = [f"{rng.integers(10**11, 10**12)}" for _ in range(shape.accounts)]
    account_names = [
        f"{_ACCOUNT_NAMES[i % len(_ACCOUNT_NAMES)]}-{i // len(_ACCOUNT_NAMES) + 1:02d}" for i in range(shape.accounts)
    ]
    # Every billing account gets at least one sub-account; the rest are spread at random.
    account_billing = np.concatenate(
        [
            np.arange(shape.billing_accounts),
            rng.integers(0, shape.billing_accounts, shape.accounts - shape.billing_accounts),
        ]
    )
    usage_services = min(shape.services - 1, len(SERVICES)) or 1  # the last one is AWS Support
    n = shape.resources
    resource_account = rng.integers(0, shape.accounts, n)
    # A few services carry most resources (compute, storage, databases), as in real estates.
    service_weight = 1.0 / np.arange(1, usage_services + 1) ** 1.1
    resource_service = rng.choice(usage_services, n, p=service_weight / service_weight.sum())
    resource_region = rng.choice(len(REGIONS), n, p=[0.45, 0.2, 0.2, 0.1, 0.05])
    suffixes = rng.integers(16**11, 16**12, n)
    resource_ids, resource_names = [], []
    for i in range(n):
        _, _, _, _, prefix = SERVICES[resource_service[i]]
        service_code, _, rest = prefix.partition(":")
        region = REGIONS[resource_region[i]][0]
        name = f"{rest}{suffixes[i]:012x}"
        resource_ids.append(f"arn:aws:{service_code}:{region}:{account_ids[resource_account[i]]}:{name}")
        resource_names.append(name.rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    weight = rng.pareto(1.2, n) + 1.0
    micros = (rng.lognormal(mean=np.log(shape.resource_day_micros), sigma=1.6, size=n)).astype(np.int64) + 1
    return _Catalog(
        account_ids=pa.array(account_ids),
        account_names=pa.array(account_names),
        account_billing=account_billing,
        billing_ids=pa.array(billing_ids),
        billing_names=pa.array([f"Acme Corp {chr(ord('A') + i)}" for i in range(shape.billing_accounts)]),
        resource_account=resource_account,
        resource_service=resource_service,
        resource_region=resource_region,
        resource_ids=pa.array(resource_ids),
        resource_names=pa.array(resource_names),
        resource_tags=_resource_tags(rng, shape),
        resource_weight=weight / weight.sum(),
        resource_micros=micros,
    )


def _resource_tags(rng: np.random.Generator, shape: Shape) -> pa.Array:
    """One JSON tag object per resource, with the gaps and spelling variants of real estates.

    Built column-wise: each key is a JSON member's text or None, per resource.
    """
    n = shape.resources
    draw = rng.random((n, 10))
    project = rng.integers(len(PROJECTS), size=n)
    team_index = {team: i for i, (team, _) in enumerate(TEAMS)}
    team = np.array([team_index[PROJECTS[p][1]] for p in range(len(PROJECTS))])[project]
    env = rng.choice(len(ENVIRONMENTS), n, p=[0.55, 0.2, 0.2, 0.05])
    ticket = rng.integers(1000, 9999, n)
    is_platform = team == team_index["platform"]

    def texts(values: list[str], index: np.ndarray) -> np.ndarray:
        picked: np.ndarray = np.array(values, dtype=object)[index]
        return picked

    def member(present: np.ndarray, key: np.ndarray | str, value: np.ndarray) -> list[str | None]:
        text = np.char.add(np.char.add(np.char.add('"', np.asarray(key, dtype=str)), '":'), value.astype(str))
        members: list[str | None] = np.where(present, text.astype(object), _NONE).tolist()
        return members

    def quoted(values: np.ndarray) -> np.ndarray:
        return np.char.add(np.char.add('"', values.astype(str)), '"')

    env_names = texts(list(ENVIRONMENTS), env).astype(str)
    env_names = np.where(draw[:, 5] < 0.05, np.char.capitalize(env_names), env_names)
    members = [
        member(
            draw[:, 0] < 0.75,
            np.where(draw[:, 1] < 0.06, "CostCenter", "cost-center"),
            quoted(texts([cc for _, cc in TEAMS], team)),
        ),
        member(
            draw[:, 2] < 0.85, np.where(draw[:, 3] < 0.04, " Team ", "team"), quoted(texts([t for t, _ in TEAMS], team))
        ),
        member(draw[:, 4] < 0.7, "project", quoted(texts([p for p, _ in PROJECTS], project))),
        member(draw[:, 6] < 0.9, "environment", quoted(env_names)),
        # Some tools write the boolean true rather than the string "true".
        member(is_platform | (draw[:, 7] < 0.05), "shared", np.where(draw[:, 8] < 0.3, "true", '"true"')),
        member(
            draw[:, 9] < 0.5,
            "owner",
            quoted(np.char.add(texts([t for t, _ in TEAMS], team).astype(str), "-lead@acme.example")),
        ),
        # A number, under a key no rule reads.
        member(rng.random(n) < 0.02, "ticket", ticket),
    ]
    untagged = rng.random(n) < shape.untagged_share
    empty = np.where(rng.random(n) < 0.5, _NONE, "{}")
    tags = ["{" + ",".join(m for m in row if m is not None) + "}" for row in zip(*members)]
    return pa.array(np.where(untagged, empty, np.array(tags, dtype=object)), pa.string())


def generate(shape: Shape) -> Iterator[pa.Table]:
    """Yield the month in chunks of at most :data:`CHUNK_ROWS` lines, as cost tables.

    The fixed lines (support fees, RI purchases) come first, then usage and credits.
    """
    catalog = _catalog(shape)
    yield _fixed_lines(shape, catalog)
    remaining = shape.rows - shape.fixed_rows
    chunk = 0
    while remaining > 0:
        size = min(CHUNK_ROWS, remaining)
        chunk += 1
        yield _usage_lines(shape, catalog, size, np.random.default_rng([shape.seed, chunk]))
        remaining -= size


def _money(micros: np.ndarray) -> pa.Array:
    """Integer micro-dollars as exact :data:`~chargeback_engine.focus.MONEY`: built from the
    128-bit words as ``decimal128(38, 6)``, then rescaled (exactly) to the ledger's scale."""
    units = micros.astype(np.int64)
    words = np.empty((len(units), 2), dtype=np.int64)
    words[:, 0] = units
    words[:, 1] = np.where(units < 0, -1, 0)  # sign extension into the high word
    return pa.Array.from_buffers(pa.decimal128(38, 6), len(units), [None, pa.py_buffer(words)]).cast(MONEY)


def _usage_lines(shape: Shape, catalog: _Catalog, size: int, rng: np.random.Generator) -> pa.Table:
    resource = rng.choice(len(catalog.resource_weight), size, p=catalog.resource_weight)
    day = rng.integers(0, _days(shape.period), size)
    noise = rng.lognormal(0.0, 0.35, size)
    billed = np.maximum((catalog.resource_micros[resource] * noise).astype(np.int64), 1)
    is_credit = rng.random(size) < shape.credit_share
    billed = np.where(is_credit, -np.maximum(billed // 4, 1), billed)
    list_micros = np.where(is_credit, 0, billed + billed // 5)  # a 1/6 negotiated discount
    quantity = np.where(is_credit, 0, np.maximum(billed // 90, 1))  # ~ $0.09 per unit
    service = catalog.resource_service[resource]
    account = catalog.resource_account[resource]
    category = np.where(is_credit, 1, 0)
    start = _day_starts(shape.period, day)
    service_names = pa.array([s[0] for s in SERVICES])
    credit_null = pa.array(is_credit)
    return _table(
        shape,
        catalog,
        {
            "BilledCost": _money(billed),
            "EffectiveCost": _money(billed),
            "ListCost": _money(list_micros),
            "ContractedCost": _money(billed),
            "account": account,
            "ChargePeriodStart": start,
            "ChargePeriodEnd": pc.add(start, pa.scalar(86_400_000_000, pa.duration("us"))),
            "ChargeCategory": pa.array(["Usage", "Credit"]).take(pa.array(category)),
            "ChargeFrequency": pa.array(["Usage-Based", "One-Time"]).take(pa.array(category)),
            "ChargeDescription": pc.if_else(credit_null, pa.scalar("Promotional credit"), pa.scalar(None, pa.string())),
            "ConsumedQuantity": _quantity(quantity, is_credit),
            "ConsumedUnit": pc.if_else(
                credit_null, pa.scalar(None, pa.string()), pa.array([s[3] for s in SERVICES]).take(pa.array(service))
            ),
            "RegionId": pa.array([r[0] for r in REGIONS]).take(pa.array(catalog.resource_region[resource])),
            "RegionName": pa.array([r[1] for r in REGIONS]).take(pa.array(catalog.resource_region[resource])),
            "ResourceId": pc.if_else(
                credit_null, pa.scalar(None, pa.string()), catalog.resource_ids.take(pa.array(resource))
            ),
            "ResourceName": pc.if_else(
                credit_null, pa.scalar(None, pa.string()), catalog.resource_names.take(pa.array(resource))
            ),
            "ResourceType": pc.if_else(
                credit_null, pa.scalar(None, pa.string()), pa.array([s[2] for s in SERVICES]).take(pa.array(service))
            ),
            "ServiceCategory": pa.array([s[1] for s in SERVICES]).take(pa.array(service)),
            "ServiceName": service_names.take(pa.array(service)),
            "SkuId": pc.binary_join_element_wise(pa.scalar("SKU-"), pc.cast(pa.array(service), pa.string()), ""),
            "Tags": pc.if_else(
                credit_null, pa.scalar(None, pa.string()), catalog.resource_tags.take(pa.array(resource))
            ),
        },
    )


def _fixed_lines(shape: Shape, catalog: _Catalog) -> pa.Table:
    """A support fee per sub-account and an upfront RI purchase per billing account."""
    rng = np.random.default_rng([shape.seed, 1_000_000])
    support = rng.integers(100_000_000, 3_000_000_000, shape.accounts)  # $100 - $3,000
    ri = rng.integers(1_000, 20_000, shape.billing_accounts) * 1_000_000  # whole dollars
    n_support, n_ri = shape.accounts, shape.billing_accounts
    billed = np.concatenate([support, ri])
    # A purchase that covers future usage has EffectiveCost 0 (FOCUS 1.0 and later).
    effective = np.concatenate([support, np.zeros(n_ri, dtype=np.int64)])
    ri_accounts = np.array([int(np.flatnonzero(catalog.account_billing == b)[0]) for b in range(n_ri)], dtype=np.int64)
    account = np.concatenate([np.arange(n_support), ri_accounts])
    month_start = _day_starts(shape.period, np.zeros(n_support + n_ri, dtype=np.int64))
    month_end = pa.array(np.full(n_support + n_ri, np.datetime64(shape.period.end.isoformat(), "us")), TIMESTAMP)
    kinds = ["support"] * n_support + ["ri"] * n_ri
    ri_ids = [
        f"arn:aws:ec2:us-east-1:{catalog.account_ids[a]}:reserved-instances/ri-{b:04d}"
        for b, a in enumerate(ri_accounts)
    ]

    def pick(support_value: object, ri_values: list[Any]) -> pa.Array:
        return pa.array([support_value] * n_support + ri_values)

    return _table(
        shape,
        catalog,
        {
            "BilledCost": _money(billed),
            "EffectiveCost": _money(effective),
            "ListCost": _money(billed),
            "ContractedCost": _money(billed),
            "account": account,
            "ChargePeriodStart": month_start,
            "ChargePeriodEnd": month_end,
            "ChargeCategory": pick("Purchase", ["Purchase"] * n_ri),
            "ChargeFrequency": pick("Recurring", ["One-Time"] * n_ri),
            "ChargeDescription": pa.array(
                [
                    "AWS Support (Business)"
                    if k == "support"
                    else "Reserved Instance, 1 year, all upfront, m7g.2xlarge"
                    for k in kinds
                ]
            ),
            "CommitmentDiscountId": pick(None, ri_ids),
            "CommitmentDiscountType": pick(None, ["Reserved Instance"] * n_ri),
            "PricingQuantity": _quantity(
                np.ones(n_support + n_ri, dtype=np.int64) * 1_000_000, np.zeros(n_support + n_ri, bool)
            ),
            "PricingUnit": pick("Month", ["Reservation"] * n_ri),
            "RegionId": pick(None, ["us-east-1"] * n_ri),
            "RegionName": pick(None, ["US East (N. Virginia)"] * n_ri),
            "ResourceId": pick(None, ri_ids),
            "ServiceCategory": pick(SUPPORT_SERVICE[1], ["Compute"] * n_ri),
            "ServiceName": pick(SUPPORT_SERVICE[0], [SERVICES[0][0]] * n_ri),
            "SkuId": pick("SKU-SUPPORT", ["SKU-RI-M7G"] * n_ri),
            "Tags": pick(
                None, [json.dumps({"shared": "true", "cost-center": "CC-9000"}, separators=(",", ":"))] * n_ri
            ),
        },
    )


def _table(shape: Shape, catalog: _Catalog, columns: dict[str, Any]) -> pa.Table:
    """Fill the per-account and constant columns and conform to the cost table's order."""
    account = pa.array(columns.pop("account"))
    n = len(account)
    billing = pa.array(catalog.account_billing).take(account)
    period_start = np.full(n, np.datetime64(shape.period.start.isoformat(), "us"))
    period_end = np.full(n, np.datetime64(shape.period.end.isoformat(), "us"))
    columns.update(
        {
            "BillingCurrency": pa.array(np.full(n, "USD")),
            "BillingAccountId": catalog.billing_ids.take(billing),
            "BillingAccountName": catalog.billing_names.take(billing),
            "BillingPeriodStart": pa.array(period_start, TIMESTAMP),
            "BillingPeriodEnd": pa.array(period_end, TIMESTAMP),
            "ChargeClass": pa.nulls(n, pa.string()),
            "ProviderName": pa.array(np.full(n, "AWS")),
            "PublisherName": pa.array(np.full(n, "AWS")),
            "InvoiceIssuerName": pa.array(np.full(n, "AWS")),
            "SubAccountId": catalog.account_ids.take(account),
            "SubAccountName": catalog.account_names.take(account),
        }
    )
    if "PricingQuantity" not in columns:
        columns["PricingQuantity"] = columns["ConsumedQuantity"]
        columns["PricingUnit"] = columns["ConsumedUnit"]
    fields = [f for f in COST_TABLE_SCHEMA if not f.name.startswith("x_")]
    arrays = [columns[f.name].cast(f.type) if f.name in columns else pa.nulls(n, f.type) for f in fields]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _quantity(micros: np.ndarray, is_null: np.ndarray) -> pa.Array:
    return pc.if_else(pa.array(is_null), pa.scalar(None, QUANTITY), _money(micros))


def _days(period: Period) -> int:
    return (period.end - period.start).days


def _day_starts(period: Period, day: np.ndarray) -> pa.Array:
    base = np.datetime64(period.start.isoformat(), "us")
    return pa.array(base + day.astype("timedelta64[D]").astype("timedelta64[us]"), TIMESTAMP)


def write_parquet(shape: Shape, path: Path) -> Path:
    """Write the month as one Parquet file, a row group per chunk; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with pq.ParquetWriter(tmp, _file_schema()) as writer:
        for table in generate(shape):
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    tmp.replace(path)
    return path


def write_csv(shape: Shape, path: Path) -> Path:
    """Write the month as FOCUS CSV: ISO 8601 UTC timestamps, decimals without trailing zeros."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with pacsv.CSVWriter(tmp, _csv_schema()) as writer:
        for table in generate(shape):
            writer.write_table(_as_text(table))
    tmp.replace(path)
    return path


def _file_schema() -> pa.Schema:
    return pa.schema([f for f in COST_TABLE_SCHEMA if not f.name.startswith("x_")])


def _csv_schema() -> pa.Schema:
    return pa.schema([pa.field(f.name, pa.string()) for f in _file_schema()])


def _as_text(table: pa.Table) -> pa.Table:
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_decimal(field.type):
            text = pc.replace_substring_regex(pc.cast(column, pa.string()), rf"^0E-{field.type.scale}$", "0")
            text = pc.replace_substring_regex(text, r"(\.\d*?)0+$", r"\1")
            column = pc.replace_substring_regex(text, r"\.$", "")
        elif pa.types.is_timestamp(field.type):
            column = pc.strftime(column.cast(pa.timestamp("s", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")
        columns.append(column.cast(pa.string()))
    return pa.Table.from_arrays(columns, schema=_csv_schema())
