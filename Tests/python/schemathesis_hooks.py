"""Schemathesis checks of LISA's own (loaded with SCHEMATHESIS_HOOKS=schemathesis_hooks)."""
import os

import schemathesis


@schemathesis.check
def admin_only_refused(ctx, response, case):
    """An operation marked x-lisa-admin-only never answers 2xx to a non-admin."""
    if os.environ.get("LISA_SCHEMATHESIS_ROLE") != "user":
        return None
    if case.operation.definition.raw.get("x-lisa-admin-only") and 200 <= response.status_code < 300:
        raise AssertionError(f"{case.method} {case.formatted_path} answered {response.status_code} to a non-admin")
    return None


@schemathesis.check
def no_internal_error(ctx, response, case):
    """5xx only for upstream trouble (502-504, type upstream_error), never a 500."""
    if response.status_code >= 500:
        body = response.json() if response.headers.get("content-type", [""])[0].startswith("application/json") else {}
        kind = (body.get("error") or {}).get("type")
        if response.status_code == 500 or kind != "upstream_error":
            raise AssertionError(f"{case.method} {case.formatted_path} answered {response.status_code}: {body}")
    return None
