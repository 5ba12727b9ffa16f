"""The AWS enrichers against moto: the Tagging API over three pages, Organizations account tags."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber
from chargeback_aws import plugin
from chargeback_aws.enrichers import AccountTagsEnricher, ResourceTagsEnricher, short_id
from moto import mock_aws

from chargeback_engine.plugin import InputError
from chargeback_engine.testing import EnricherContract, line_items, make_engine, make_policy

INSTANCES = 210  # GetResources pages hold 100: three pages


@pytest.fixture
def aws(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield


@pytest.fixture
def instances(aws) -> list[str]:  # type: ignore[no-untyped-def]
    ec2 = boto3.client("ec2", region_name="us-east-1")
    ids = []
    for team in ("web", "data"):
        reservation = ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=INSTANCES // 2,
            MaxCount=INSTANCES // 2,
            TagSpecifications=[
                {
                    "ResourceType": "instance",
                    "Tags": [{"Key": "team", "Value": team}, {"Key": "CostCenter", "Value": f"CC-{team}"}],
                }
            ],
        )
        ids += [i["InstanceId"] for i in reservation["Instances"]]
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="acme-logs")
    s3.put_bucket_tagging(Bucket="acme-logs", Tagging={"TagSet": [{"Key": "team", "Value": "platform"}]})
    return ids


@pytest.fixture
def accounts(aws) -> dict[str, str]:  # type: ignore[no-untyped-def]
    org = boto3.client("organizations", region_name="us-east-1")
    org.create_organization(FeatureSet="ALL")
    for n in range(3):
        org.create_account(Email=f"team{n}@example.com", AccountName=f"team-{n}")
    listed = {a["Name"]: a["Id"] for a in org.list_accounts()["Accounts"]}
    org.tag_resource(ResourceId=listed["team-0"], Tags=[{"Key": "cost-center", "Value": "CC-100"}])
    org.tag_resource(
        ResourceId=listed["team-1"],
        Tags=[{"Key": "cost-center", "Value": "CC-101"}, {"Key": "owner", "Value": "bo@example.com"}],
    )
    return listed


def test_every_page_of_get_resources_is_read(instances: list[str]) -> None:
    client = boto3.client("resourcegroupstaggingapi", region_name="us-east-1")
    tokens: list[str | None] = []
    client.meta.events.register(
        "provide-client-params.resource-groups-tagging-api.GetResources",
        lambda params, **_: tokens.append(params.get("PaginationToken")),
    )
    enricher = ResourceTagsEnricher(client_factory=lambda service, region: client)
    records = list(enricher.inventory({"enricher": "aws-resource-tags", "regions": ["us-east-1"]}))
    assert len(tokens) >= 3 and tokens[0] is None and None not in tokens[1:]  # followed to the end
    by_key = {r.key: r.tags for r in records}
    assert {i for i in instances if i in by_key} == set(instances)  # the bare id of every instance
    arns = [r.key for r in records if r.key.startswith("arn:aws:ec2:")]
    assert len(arns) == INSTANCES and len(set(arns)) == INSTANCES
    assert by_key[instances[0]] == {"team": "web", "CostCenter": "CC-web"}
    assert by_key["acme-logs"] == by_key["arn:aws:s3:::acme-logs"] == {"team": "platform"}


def test_resource_type_filters_are_passed(instances: list[str]) -> None:
    records = list(ResourceTagsEnricher().inventory({"enricher": "aws-resource-tags", "resource_types": ["s3"]}))
    assert {r.key for r in records} == {"arn:aws:s3:::acme-logs", "acme-logs"}


def test_account_tags_come_from_organizations(accounts: dict[str, str]) -> None:
    records = list(AccountTagsEnricher().inventory({"enricher": "aws-account-tags", "account_name_tag": "account"}))
    by_account = {r.key: r.tags for r in records}
    assert by_account[accounts["team-0"]] == {"cost-center": "CC-100", "account": "team-0"}
    assert by_account[accounts["team-1"]] == {"cost-center": "CC-101", "owner": "bo@example.com", "account": "team-1"}
    assert all(r.scope == "account" for r in records)


def test_a_refused_call_is_an_input_error(aws) -> None:  # type: ignore[no-untyped-def]
    client = boto3.client("organizations", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("list_accounts", "AccessDeniedException", "not the management account")
    with stubber, pytest.raises(InputError, match="aws-account-tags: ListAccounts: AccessDeniedException: not the"):
        list(AccountTagsEnricher(client_factory=lambda service, region: client).inventory({}))


def test_short_ids() -> None:
    assert short_id("arn:aws:ec2:us-east-1:123456789012:instance/i-0abc") == "i-0abc"
    assert short_id("arn:aws:s3:::acme-logs") == "acme-logs"
    assert short_id("arn:aws:lambda:us-east-1:123456789012:function:resize") == "resize"
    assert short_id("i-0abc") is None


def test_inventory_then_account_tags_fill_the_bill(tmp_path, instances: list[str], accounts: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """bill first, then the inventory, then the account: the issue's example precedence."""
    policy = make_policy(
        plugin,
        builtins=True,
        directory=tmp_path,
        tags={"aliases": {"costcenter": "cost-center"}},
        rules=[{"id": "cc", "priority": 1, "allocate": {"method": "tag", "keys": ["cost-center"]}}],
        cost_centers=["CC-web", "CC-data", "CC-100", "CC-7"],
        enrich={
            "cache": "cache",
            "sources": [
                {"enricher": "aws-resource-tags", "id": "inventory", "regions": ["us-east-1"]},
                {"enricher": "aws-account-tags", "id": "accounts"},
            ],
            "precedence": {"default": ["bill", "inventory", "accounts"]},
        },
    )
    items = line_items(
        {"BilledCost": "3", "ResourceId": instances[0], "SubAccountId": accounts["team-0"]},
        {"BilledCost": "5", "ResourceId": "vol-unknown", "SubAccountId": accounts["team-0"]},
        {"BilledCost": "7", "ResourceId": instances[-1], "Tags": {"cost-center": "CC-7"}},
    )
    result = make_engine(policy, plugin, builtins=True).run([items], "2026-10")
    assert {cc: a for cc, _, a in result.summary() if a} == {"CC-web": 3, "CC-100": 5, "CC-7": 7}


class TestResourceTagsContract(EnricherContract):
    plugin = plugin
    name = "aws-resource-tags"

    @pytest.fixture
    def options(self, aws):  # type: ignore[no-untyped-def]
        boto3.client("ec2", region_name="us-east-1").run_instances(
            ImageId="ami-12c6146b",
            MinCount=3,
            MaxCount=3,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "team", "Value": "web"}]}],
        )
        return {"enricher": "aws-resource-tags", "regions": ["us-east-1"]}


class TestAccountTagsContract(EnricherContract):
    plugin = plugin
    name = "aws-account-tags"

    @pytest.fixture
    def options(self, accounts):  # type: ignore[no-untyped-def]
        return {"enricher": "aws-account-tags"}
