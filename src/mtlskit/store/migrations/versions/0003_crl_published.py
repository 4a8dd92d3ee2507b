"""published CRL numbers, and reloads that signal the running server

``crl_state.published_number``: the CRL number last written to HOME/crl/ and into every
deployment. A CRL committed but not published yet (the files could not be written) has
a larger ``crl_number``; the next `revoke`, `crl` or `serve` start publishes it.

``deployments.reload_command``: the defaults recorded before this revision ran
``nginx -s reload`` or ``apache2 -k graceful``, which starts an Apache that is not
running; they become ``signal:SIG:PROGRAM:PIDFILE`` (signal the server only when the
process in its pidfile is alive), and include-only HAProxy gets Debian's admin socket.

Revision ID: 0003_crl_published
Revises: 0002_crl
"""
from alembic import op
import sqlalchemy as sa


revision = '0003_crl_published'
down_revision = '0002_crl'
branch_labels = None
depends_on = None


def _legacy_defaults(directory: str) -> dict:
    """What `deploy` recorded without --reload before, and what it records now."""
    return {
        ("nginx", f"nginx -p {directory} -c {directory}/nginx.conf -s reload"):
            f"signal:HUP:nginx:{directory}/nginx.pid",
        ("nginx", "nginx -s reload"): "signal:HUP:nginx:/run/nginx.pid",
        ("apache", f"apache2 -f {directory}/httpd.conf -k graceful"):
            f"signal:USR1:apache2:{directory}/apache.pid",
        ("apache", "apache2ctl graceful"): "signal:USR1:apache2:/run/apache2/apache2.pid",
        ("haproxy", None): "socket:/run/haproxy/admin.sock",
    }


def upgrade() -> None:
    with op.batch_alter_table('crl_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('published_number', sa.Integer(), nullable=True))
    connection = op.get_bind()
    connection.execute(sa.text("UPDATE crl_state SET published_number = crl_number WHERE der IS NOT NULL"))
    rows = connection.execute(sa.text("SELECT id, server, directory, reload_command FROM deployments")).all()
    for row_id, server, directory, command in rows:
        new = _legacy_defaults(directory).get((server, command))
        if new is not None:
            connection.execute(sa.text("UPDATE deployments SET reload_command = :new WHERE id = :id"),
                               {"new": new, "id": row_id})


def downgrade() -> None:
    with op.batch_alter_table('crl_state', schema=None) as batch_op:
        batch_op.drop_column('published_number')
