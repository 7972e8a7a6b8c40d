"""Waiting on long operations: poll until done, then hand back the result or the error."""

from __future__ import annotations

import io
from unittest.mock import Mock

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.polling import LROPoller
from mlops_azure.progress import POLL_SECONDS, wait_for
from rich.console import Console


def _poller(polls_before_done: int) -> Mock:
    poller = Mock(spec_set=LROPoller)
    poller.done.side_effect = [False] * polls_before_done + [True]
    return poller


def test_wait_polls_until_the_operation_is_done() -> None:
    poller = _poller(2)
    poller.result.return_value = "endpoint"
    console = Console(file=io.StringIO(), width=80)
    assert wait_for(poller, "Endpoint acme-dev", console=console) == "endpoint"
    assert poller.wait.call_count == 2
    poller.wait.assert_called_with(timeout=POLL_SECONDS)
    assert "Endpoint acme-dev: done" in console.file.getvalue()  # type: ignore[attr-defined]


def test_wait_raises_the_operation_error() -> None:
    poller = _poller(0)
    poller.result.side_effect = HttpResponseError(message="quota exceeded")
    with pytest.raises(HttpResponseError, match="quota exceeded"):
        wait_for(poller, "Compute", console=Console(file=io.StringIO()))
