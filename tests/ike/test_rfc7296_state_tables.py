"""The IKE_SA and CHILD_SA life cycles (RFC 7296 §1.2-§1.4, §2.8) as transition tables.

Like h2's state-machine tests, every (state, input) pair is walked: a pair in the table leads to
the state it names, every other pair is a protocol error that leaves the state as it was. For
CHILD_SAs the walk drives real ChildSa objects into each state along legal inputs first.
"""

from __future__ import annotations

import ast
import itertools
from collections import deque
from pathlib import Path

import pytest

import ike
from ike.child_sa import CHILD_TRANSITIONS, ChildInput, ChildSa, ChildState
from ike.ike_sa import TRANSITIONS, Input, ProtocolViolation, State, next_state
from tests.ike.responder import NOW, Pair

IKE_PAIRS = list(itertools.product(State, Input))
CHILD_PAIRS = list(itertools.product(ChildState, ChildInput))


def _paths(table: dict, start) -> dict:
    """Shortest input sequence from `start` to every state reachable through `table`."""
    paths = {start: []}
    todo = deque([start])
    while todo:
        state = todo.popleft()
        for (source, event), target in table.items():
            if source is state and target not in paths:
                paths[target] = paths[state] + [event]
                todo.append(target)
    return paths


def _child_in(state: ChildState) -> ChildSa:
    child = ChildSa(child_id=1, spi_in=b"\x00\x00\x10\x01", spi_out=b"\x00\x00\x20\x02",
                    proposal=None, encr_key_in=b"k" * 16, integ_key_in=b"",
                    encr_key_out=b"k" * 16, integ_key_out=b"")
    for event in _paths(CHILD_TRANSITIONS, ChildState.INSTALLED)[state]:
        child.apply(event)
    assert child.state is state
    return child


# ------------------------------------------------------------------ IKE_SA

@pytest.mark.parametrize("state,event", IKE_PAIRS,
                         ids=[f"{s.name}-{i.name}" for s, i in IKE_PAIRS])
def test_every_ike_sa_state_and_input(state, event):
    if (state, event) in TRANSITIONS:
        assert next_state(TRANSITIONS, state, event, "IKE_SA") is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(ProtocolViolation, match=f"not allowed in state {state.value}"):
            next_state(TRANSITIONS, state, event, "IKE_SA")


def test_every_ike_sa_state_is_reachable_from_initial_and_can_end():
    reachable = _paths(TRANSITIONS, State.INITIAL)
    assert set(reachable) == set(State)
    assert all((s, Input.FINISHED) in TRANSITIONS for s in State if s is not State.CLOSED)
    assert not any(source is State.CLOSED for source, _ in TRANSITIONS)  # terminal


def test_the_session_refuses_an_input_outside_the_ike_sa_table():
    pair = Pair()
    pair.connect()
    assert pair.session.ike_sa_state is State.ESTABLISHED
    with pytest.raises(ProtocolViolation):
        pair.session.connect(NOW)  # CONNECT in ESTABLISHED is not in the table
    assert pair.session.ike_sa_state is State.ESTABLISHED


# ------------------------------------------------------------------ CHILD_SA

@pytest.mark.parametrize("state,event", CHILD_PAIRS,
                         ids=[f"{s.name}-{i.name}" for s, i in CHILD_PAIRS])
def test_every_child_sa_state_and_input(state, event):
    child = _child_in(state)
    if (state, event) in CHILD_TRANSITIONS:
        child.apply(event)
        assert child.state is CHILD_TRANSITIONS[(state, event)]
    else:
        with pytest.raises(ProtocolViolation, match=f"not allowed in state {state.value}"):
            child.apply(event)
        assert child.state is state


def test_every_child_sa_state_is_reachable_and_every_input_is_used():
    assert set(_paths(CHILD_TRANSITIONS, ChildState.INSTALLED)) == set(ChildState)
    assert {event for _, event in CHILD_TRANSITIONS} == set(ChildInput)


def test_a_child_sa_state_cannot_be_assigned():
    child = _child_in(ChildState.INSTALLED)
    with pytest.raises(AttributeError):
        child.state = ChildState.DELETING


def test_rekey_of_a_rekeying_child_sa_is_not_started_twice():
    pair = Pair()
    child = pair.connect()[-1]
    pair.session.rekey_child(child.child_id)
    pair.session.rekey_child(child.child_id)  # already REKEYING: not an INSTALLED CHILD_SA
    sa = pair.session.child_sas[child.spi_in]
    assert sa.state is ChildState.REKEYING
    assert [type(e).__name__ for e in pair.advance(0)] == [
        "ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]


# ------------------------------------------------------------------ the only places

def test_states_are_assigned_only_where_the_tables_are_applied():
    """DESIGN.md says the tables are the only place state changes: check the source."""
    allowed = {("session.py", "__init__"), ("session.py", "_transition"),
               ("child_sa.py", "apply")}
    found = set()
    for path in Path(ike.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(function):
                targets = []
                if isinstance(node, ast.Assign):
                    targets = node.targets
                elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                    targets = [node.target]
                for target in targets:
                    if isinstance(target, ast.Attribute) and target.attr in ("state", "_state"):
                        found.add((path.name, function.name))
    assert found == allowed


def test_inspection_views_are_read_only():
    pair = Pair()
    child = pair.connect()[-1]
    session = pair.session
    with pytest.raises(TypeError):
        session.child_sas[b"\x00\x00\x10\x01"] = None  # a mapping proxy
    with pytest.raises(AttributeError):
        session.ike_sa.next_request_id = 7
    with pytest.raises(AttributeError):
        session.ike_sa_state = State.CLOSED
    assert list(session.child_sas) == [child.spi_in]
    assert session.ike_sa == session.ike_sa and session.retired_ike_sas == ()
    assert session.outstanding_request is None
