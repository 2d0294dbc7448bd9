"""Real objects for the schema fuzzing to act on, in a running `canopy serve --demo`.

Usage: fuzz_fixtures.py BASE_URL

Without real ids, every operation on `/cloud-accounts/{id}`, `/detections/{id}`,
`/jobs/{id}`, `/invitations/{id}`... only ever answers 404, and what lies behind the lookup
is never fuzzed (a custom detection's name with a NUL in it was stored, once). This signs in
as the demo user, reads the demo estate's ids, makes what the demo does not have (custom
detections, a pending invitation, a member to change, an invitation for the demo user, an API
key, a connection request, an organization it may delete), and prints them as `export`
lines for schemathesis.toml's `${CANOPY_FUZZ_*}` settings.
"""

import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request

BASE = sys.argv[1].rstrip("/")
PASSWORD = "correct horse battery staple"


def call(method, path, token=None, body=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as refused:
        sys.exit(f"{method} {path}: {refused.code} {refused.read().decode(errors='replace')}")


def verify(email):
    """Marks the address verified as an operator does (`canopy admin verify-email`): the
    verification e-mail waits in the outbox of a server with no mail relay."""
    subprocess.run(
        [os.environ["CANOPY_CI_CANOPY"], "admin", "verify-email", email,
         "--database-url", os.environ["CANOPY_CI_DATABASE_URL"]],
        check=True, capture_output=True,
    )


def sign_up(name):
    email = f"fuzz-{name}-{random.randrange(10**9)}@example.com"
    session = call("POST", "/v1/auth/signup", body={"email": email, "name": name, "password": PASSWORD})
    verify(email)
    return session["token"], session["user"]["id"], email


def main():
    demo = call("POST", "/v1/auth/login", body={"email": "demo@canopy.dev", "password": "canopy demo password"})
    token = demo["token"]
    org = next(
        m["organization"]["id"]
        for m in call("GET", "/v1/organizations", token)
        if m["organization"]["slug"] == "demo"
    )
    base = f"/v1/organizations/{org}"
    # The demo's cloud organizations are discovered and connected by jobs after the server
    # starts: wait until a member account is linked.
    deadline = time.monotonic() + 180
    while True:
        accounts = call("GET", f"{base}/cloud-accounts?limit=200", token)["items"]
        linked = [a for a in accounts if a.get("cloudOrganization")]
        if linked:
            break
        if time.monotonic() > deadline:
            sys.exit("the demo cloud organizations were never connected")
        time.sleep(0.5)
    account = linked[0]
    cloud_orgs = call("GET", f"{base}/cloud-organizations", token)["items"]
    aws_org = next(c for c in cloud_orgs if c["id"] == account["cloudOrganization"]["id"])
    members = call("GET", f"{base}/cloud-organizations/{aws_org['id']}/members?limit=200", token)["items"]
    job = call("GET", f"{base}/jobs?limit=1", token)["items"][0]["id"]

    def custom(name):
        return call(
            "POST",
            f"{base}/detections",
            token,
            {
                "name": name,
                "scope": "account",
                "cloudAccountId": account["id"],
                "techniques": [{"technique": "T1078.004", "category": "detect", "value": "partial"}],
            },
        )["id"]

    detection, deletable_detection = custom("Fuzzed SIEM rule"), custom("Fuzzed, then deleted")
    pending = call("POST", f"{base}/invitations", token, {"email": "fuzz-pending@example.com", "role": "member"})
    # A member whose role the fuzzer may change or who may be removed.
    member_token, member_id, member_email = sign_up("member")
    invited = call("POST", f"{base}/invitations", token, {"email": member_email, "role": "member"})
    call("POST", f"/v1/invitations/{invited['id']}/accept", member_token, {})
    # An invitation the demo user may accept or reject.
    inviter_token, _, _ = sign_up("inviter")
    elsewhere = call("POST", "/v1/organizations", inviter_token, {"name": "Fuzz elsewhere"})["id"]
    # Free has one seat, its owner's.
    call("PUT", f"/v1/organizations/{elsewhere}/subscription", inviter_token, {"tier": "individual"})
    for_demo = call(
        "POST",
        f"/v1/organizations/{elsewhere}/invitations",
        inviter_token,
        {"email": "demo@canopy.dev", "role": "member"},
    )
    api_key = call("POST", "/v1/me/api-keys", token, {"name": "fuzz"})
    # A second session of the demo user, for the fuzzer to end (revokeSession).
    second = call("POST", "/v1/auth/login", body={"email": "demo@canopy.dev", "password": "canopy demo password"})
    session = next(s["id"] for s in call("GET", "/v1/me/sessions", second["token"]) if s["current"])
    requested = f"{random.randrange(10**11, 10**12)}"
    request = call(
        "POST",
        f"{base}/connection-requests",
        token,
        {
            "provider": "aws",
            "accountId": requested,
            "roleArn": f"arn:aws:iam::{requested}:role/CanopyAccess",
            "region": "us-east-1",
        },
    )
    deletable_org = call("POST", "/v1/organizations", token, {"name": "Fuzz deletable"})["id"]

    found = {
        "CANOPY_FUZZ_ORG": org,
        "CANOPY_FUZZ_CLOUD_ORG": aws_org["id"],
        "CANOPY_FUZZ_MEMBER_KEY": members[0]["accountId"],
        "CANOPY_FUZZ_ACCOUNT": account["id"],
        "CANOPY_FUZZ_JOB": job,
        "CANOPY_FUZZ_DETECTION": detection,
        "CANOPY_FUZZ_DETECTION_DELETABLE": deletable_detection,
        "CANOPY_FUZZ_INVITATION": pending["id"],
        "CANOPY_FUZZ_INVITATION_FOR_DEMO": for_demo["id"],
        "CANOPY_FUZZ_USER": member_id,
        "CANOPY_FUZZ_API_KEY": api_key["apiKey"]["id"],
        "CANOPY_FUZZ_SESSION": session,
        "CANOPY_FUZZ_CONNECTION_REQUEST": request["token"],
        "CANOPY_FUZZ_DELETABLE_ORG": deletable_org,
    }
    for name, value in found.items():
        print(f"export {name}={value}")


if __name__ == "__main__":
    main()
