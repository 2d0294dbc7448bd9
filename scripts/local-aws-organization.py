#!/usr/bin/env python3
"""An AWS Organization in a local moto server, to connect from Canopy's console.

Creates, as management account 111111111111: an organization with OUs Production (four
accounts) and Development (two), and an organization CloudTrail trail, so a scan finds a
control every member inherits. In moto any role of an account can be assumed, so the
management role Canopy is given (CanopyManagement) and the member role it connects accounts
through (CanopyAccess) need not be created. Run it once against a fresh moto:

    pip install 'moto[server]'
    moto_server -H 127.0.0.1 -p 5123 &
    python3 scripts/local-aws-organization.py
"""

import os

import boto3

MOTO = os.environ.get("MOTO_URL", "http://127.0.0.1:5123")
MANAGEMENT = "111111111111"


def client(service, **credentials):
    return boto3.client(service, endpoint_url=MOTO, region_name="us-east-1", **credentials)


def main():
    # Assuming a role of an account makes moto act as that account.
    sts = client("sts", aws_access_key_id="local", aws_secret_access_key="local")
    c = sts.assume_role(
        RoleArn=f"arn:aws:iam::{MANAGEMENT}:role/Setup", RoleSessionName="setup"
    )["Credentials"]
    management = dict(
        aws_access_key_id=c["AccessKeyId"],
        aws_secret_access_key=c["SecretAccessKey"],
        aws_session_token=c["SessionToken"],
    )
    org = client("organizations", **management)
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    for name, count in [("Production", 4), ("Development", 2)]:
        ou = org.create_organizational_unit(ParentId=root, Name=name)["OrganizationalUnit"]["Id"]
        for i in range(count):
            account = org.create_account(
                AccountName=f"{name.lower()}-{i}", Email=f"{name.lower()}-{i}@example.com"
            )["CreateAccountStatus"]["AccountId"]
            org.move_account(AccountId=account, SourceParentId=root, DestinationParentId=ou)
    bucket = f"org-trail-{MANAGEMENT}"
    client("s3", **management).create_bucket(Bucket=bucket)
    trails = client("cloudtrail", **management)
    trails.create_trail(
        Name="org-trail", S3BucketName=bucket, IsOrganizationTrail=True, IsMultiRegionTrail=True
    )
    trails.start_logging(Name="org-trail")
    print(f"management role ARN: arn:aws:iam::{MANAGEMENT}:role/CanopyManagement")


if __name__ == "__main__":
    main()
