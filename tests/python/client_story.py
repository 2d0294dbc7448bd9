"""Drives a running Canopy through the Python client that openapi-python-client generated
from openapi/openapi.json (.ci/from-outside.sh generates it, then runs this). Every call goes
through the generated models: a field the wire sends that the document does not allow, or a
document the generator cannot model, fails here.

    python3 client_story.py <generated client parent dir> <base url>
"""

import os
import subprocess
import sys
import uuid

sys.path.insert(0, sys.argv[1])

from canopy_client import AuthenticatedClient, Client  # noqa: E402
from canopy_client.api.auth import sign_up  # noqa: E402
from canopy_client.api.billing import change_subscription, list_plans  # noqa: E402
from canopy_client.api.cloud_accounts import (  # noqa: E402
    connect_cloud_account,
    get_cloud_account,
    update_cloud_account,
)
from canopy_client.api.invitations import accept_invitation, create_invitation  # noqa: E402
from canopy_client.api.me import (  # noqa: E402
    delete_account,
    get_me,
    list_my_invitations,
    list_sessions,
)
from canopy_client.api.members import list_members  # noqa: E402
from canopy_client.api.metrics import get_dashboard  # noqa: E402
from canopy_client.api.organizations import create_organization, get_organization  # noqa: E402
from canopy_client.models import (  # noqa: E402
    AccountStatusDto,
    ChangeTierRequest,
    ConnectAccountRequest,
    CreateOrganizationRequest,
    DeleteAccountRequest,
    InviteRequest,
    Problem,
    ProviderDto,
    RangeDto,
    RoleDto,
    SelfServiceTierDto,
    SignUpRequest,
    UpdateAccountRequest,
)
from canopy_client.types import UNSET  # noqa: E402


def ok(response, status):
    """The parsed body of an answer that must have `status`."""
    assert response.status_code == status, (response.status_code, response.content[:400])
    assert response.parsed is not None and not isinstance(response.parsed, Problem), response.parsed
    return response.parsed


def problem(response, status, code):
    """The parsed problem of an answer that must be an error."""
    assert response.status_code == status, (response.status_code, response.content[:400])
    assert isinstance(response.parsed, Problem), response.parsed
    assert response.parsed.code == code, response.parsed
    return response.parsed


def main(base_url):
    run = uuid.uuid4().hex[:10]
    anonymous = Client(base_url=base_url, raise_on_unexpected_status=True)

    plans = ok(list_plans.sync_detailed(client=anonymous), 200)
    assert len(plans.plans) >= 4

    def account(name):
        session = ok(
            sign_up.sync_detailed(
                client=anonymous,
                body=SignUpRequest(
                    email=f"{name}-{run}@python.example",
                    name=name.title(),
                    password="correct horse battery",
                ),
            ),
            201,
        )
        return session, AuthenticatedClient(
            base_url=base_url, token=session.token, raise_on_unexpected_status=True
        )

    ada, ada_api = account("ada")
    me = ok(get_me.sync_detailed(client=ada_api), 200)
    assert me.user.email == f"ada-{run}@python.example"

    slug = f"py-{run}"
    org = ok(
        create_organization.sync_detailed(
            client=ada_api, body=CreateOrganizationRequest(name="Python Corp", slug=slug)
        ),
        201,
    )
    assert org.slug == slug
    # Absent optional fields arrive as UNSET, never as a null the model cannot take.
    assert org.logo is UNSET

    # Free allows one member: the refusal is a typed problem with the plan's numbers.
    refused = problem(
        create_invitation.sync_detailed(
            slug, client=ada_api, body=InviteRequest(email=f"bob-{run}@python.example", role=RoleDto.MEMBER)
        ),
        402,
        "plan_limit",
    )
    assert refused.required_tier == "individual", refused

    ok(
        change_subscription.sync_detailed(
            slug, client=ada_api, body=ChangeTierRequest(tier=SelfServiceTierDto.PRO)
        ),
        200,
    )
    invitation = ok(
        create_invitation.sync_detailed(
            slug, client=ada_api, body=InviteRequest(email=f"bob-{run}@python.example", role=RoleDto.MEMBER)
        ),
        201,
    )

    bob, bob_api = account("bob")
    assert bob.user.email_verified is False
    received = ok(list_my_invitations.sync_detailed(client=bob_api), 200)
    assert any(r.invitation.id == invitation.id for r in received)
    # An unverified address cannot accept: a typed refusal that says what to do.
    problem(accept_invitation.sync_detailed(invitation.id, client=bob_api), 403, "email_unverified")
    subprocess.run(
        [os.environ["CANOPY_CI_CANOPY"], "admin", "verify-email", bob.user.email,
         "--database-url", os.environ["CANOPY_CI_DATABASE_URL"]],
        check=True, capture_output=True,
    )
    assert ok(get_me.sync_detailed(client=bob_api), 200).user.email_verified is True
    ok(accept_invitation.sync_detailed(invitation.id, client=bob_api), 200)
    members = ok(list_members.sync_detailed(slug, client=ada_api), 200)
    assert len(members.items) == 2

    account_id = f"{uuid.uuid4().int % 10**12:012d}"
    connected = ok(
        connect_cloud_account.sync_detailed(
            slug,
            client=ada_api,
            body=ConnectAccountRequest(
                provider=ProviderDto.AWS,
                account_id=account_id,
                role_arn=f"arn:aws:iam::{account_id}:role/CanopyAccess",
                region="eu-west-1",
                alias="Production",
            ),
        ),
        201,
    )
    assert connected.status == AccountStatusDto.PENDING, connected.status

    # PATCH with an explicit null clears a field (the document declares it nullable).
    edited = ok(
        update_cloud_account.sync_detailed(
            slug, connected.id, client=ada_api, body=UpdateAccountRequest(alias=None)
        ),
        200,
    )
    assert edited.alias is UNSET, edited.alias

    dashboard = ok(get_dashboard.sync_detailed(slug, client=bob_api, range_=RangeDto("24h")), 200)
    assert dashboard.organization.slug == slug
    assert len(dashboard.accounts) == 1
    assert dashboard.metrics.errors == [], dashboard.metrics.errors
    after = ok(get_cloud_account.sync_detailed(slug, connected.id, client=ada_api), 200)
    assert after.status == AccountStatusDto.ACTIVE, after.status

    # Another tenant's organization is a typed 404.
    _, eve_api = account("eve")
    problem(get_organization.sync_detailed(slug, client=eve_api), 404, "not_found")

    # Eve looks after her own account: her one session, then she leaves for good.
    sessions = ok(list_sessions.sync_detailed(client=eve_api), 200)
    assert [s.current for s in sessions] == [True], sessions
    wrong = problem(
        delete_account.sync_detailed(
            client=eve_api, body=DeleteAccountRequest(current_password="not her password")
        ),
        422,
        "validation_failed",
    )
    assert wrong.errors[0].field == "currentPassword", wrong.errors
    gone = ok(
        delete_account.sync_detailed(
            client=eve_api, body=DeleteAccountRequest(current_password="correct horse battery")
        ),
        200,
    )
    assert len(gone.organizations_deleted) == 1 and gone.memberships_ended == [], gone
    problem(get_me.sync_detailed(client=eve_api), 401, "unauthenticated")
    print(f"python client story: ok ({base_url})")


if __name__ == "__main__":
    main(sys.argv[2])
