#!/usr/bin/env bash
# Writes the schema fixtures of the given versions (Tests/Fixtures/schema): the SQLite file and,
# from version 3, the PostgreSQL dump. A fixture is written once, when the migration after it
# is appended, and committed; never rewrite an old one.
#   scripts/schema-fixtures.sh 8        # the fixture of schema version 8
#   scripts/schema-fixtures.sh 3,4,5    # several
# Needs a build of the tests (swift build --build-tests) and scripts/postgres.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSIONS="${1:?usage: $0 VERSION[,VERSION...]}"
URL="$(./scripts/postgres.sh start)"
export LISA_VAPOR_EXAMPLE=1
LISA_WRITE_SCHEMA_FIXTURES="$VERSIONS" LISA_TEST_DATABASE_URL="$URL" swift test --skip-build --filter SchemaFixtureWriter >&2
BIN="$(.venv-pg/bin/python -c 'import pgserver, os; print(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))')"
mkdir -p Tests/Fixtures/schema/postgres
for v in ${VERSIONS//,/ }; do
    # 1 KB pages keep a file a few KB; the journal stays WAL, as LISA leaves it.
    python3 - "Tests/Fixtures/schema/sqlite/v$v.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
for pragma in ("PRAGMA journal_mode=DELETE", "PRAGMA page_size=1024", "VACUUM", "PRAGMA journal_mode=WAL"):
    db.execute(pragma)
db.close()
PY
    [ "$v" -ge 3 ] || continue
    # INSERTs (not COPY), so the tests load a dump through the driver, one statement at a time.
    "$BIN/pg_dump" -h 127.0.0.1 -p "${LISA_PG_PORT:-55432}" -U postgres --inserts --no-owner --no-privileges --no-comments \
        "lisa_fixture_v$v" | grep -v '^--' | cat -s >"Tests/Fixtures/schema/postgres/v$v.sql"
    "$BIN/psql" -h 127.0.0.1 -p "${LISA_PG_PORT:-55432}" -U postgres -q -c "DROP DATABASE lisa_fixture_v$v" >/dev/null
done
ls -l Tests/Fixtures/schema/sqlite Tests/Fixtures/schema/postgres
