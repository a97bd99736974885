"""Create the first UI admin in the metadata database (FAB auth manager) unless that user exists.

The name and password come from the environment (ADMIN_USERNAME, ADMIN_PASSWORD; in Kubernetes from the
admin Secret through secretKeyRef), never from the command line, which every process on the node can
read. An existing user is left alone, so a password changed in the UI survives the next upgrade. Used by
the chart's admin-user hook Job and by the local demo stack alike.
"""

import os
import sys

from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder


def main() -> int | str:
    username = os.environ.get("ADMIN_USERNAME", "")
    password = os.environ.get("ADMIN_PASSWORD", "")
    if not username or not password:
        return "ADMIN_USERNAME and ADMIN_PASSWORD must both be set (from the admin Secret's username and password)"
    with get_application_builder() as appbuilder:
        security = appbuilder.sm
        if security.find_user(username=username):
            print(f"admin user {username!r} exists: left as it is")
            return 0
        role = security.find_role("Admin")
        if role is None:
            return "FAB has no role 'Admin': the metadata database is not migrated (`airflow db migrate`)"
        if not security.add_user(username, "TripClick", "Admin", f"{username}@tripclick.invalid", role, password):
            return f"FAB could not create the user {username!r} (see the log above)"
    print(f"admin user {username!r} created with role Admin")
    return 0


sys.exit(main())
