"""A child write the API server refuses becomes a ChildError naming the child and the server's message;
transient trouble stays an ordinary error for the manager's quiet retry."""

from __future__ import annotations

import httpx2
import pytest

from adapterops.runtime.conditions import set_condition
from adapterops.runtime.failures import ChildError, record, writing


def refusal(code: int, message: str = "admission webhook denied the request") -> httpx2.HTTPStatusError:
    request = httpx2.Request("POST", "https://api/apis/batch/v1/namespaces/ml/jobs")
    return httpx2.HTTPStatusError(message, request=request, response=httpx2.Response(code, request=request))


@pytest.mark.parametrize("code", [400, 403, 404, 422])
def test_a_refusal_names_the_verb_the_child_and_the_servers_message(code: int) -> None:
    with pytest.raises(ChildError) as caught, writing("create", "Job", "sweep-t00"):
        raise refusal(code)
    assert str(caught.value) == f"create Job sweep-t00: admission webhook denied the request (HTTP {code})"
    assert caught.value.reason == "CreateFailed"


@pytest.mark.parametrize("code", [409, 429, 500, 503])
def test_transient_trouble_is_not_reported_as_a_refusal(code: int) -> None:
    with pytest.raises(httpx2.HTTPStatusError) as caught, writing("apply", "Deployment", "d"):
        raise refusal(code)
    assert not isinstance(caught.value, ChildError)


def test_the_condition_is_set_by_a_failure_and_cleared_only_once_it_existed() -> None:
    failure = ChildError("apply", "Service", "s", "forbidden (HTTP 403)")
    assert record([], None, 1) == []  # never failed: no condition appears
    failed = record([], failure, 1)
    assert [(c.type, c.status, c.reason) for c in failed] == [("ChildFailure", "True", "ApplyFailed")]
    cleared = record(failed, None, 2)
    assert [(c.type, c.status, c.reason) for c in cleared] == [("ChildFailure", "False", "ChildrenWritten")]
    assert record(set_condition([], "Ready", True, "Serving", "", 1), None, 1)[0].type == "Ready"
