"""DatasetInput: dotted column paths into nested values, and .json files of records keyed by id."""

from __future__ import annotations

import json

import pytest

from synthloop.runs.inputs import DatasetInput, InputError


def test_dotted_paths_reach_into_messages(tmp_path):
    data = tmp_path / "chat.jsonl"
    row = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}],
           "meta": {"source": "x"}}
    data.write_text(json.dumps(row) + "\n")
    mapped = next(DatasetInput(path=data, columns={"text": "messages.-1.content", "src": "meta.source"}).rows())
    assert mapped["text"] == "Hello there" and mapped["src"] == "x" and "messages" in mapped
    with pytest.raises(InputError, match="no column 'messages.5.content'"):
        next(DatasetInput(path=data, columns={"text": "messages.5.content"}).rows())


def test_keyed_json_records(tmp_path):
    keyed = tmp_path / "keyed.json"
    keyed.write_text(json.dumps({"a1": {"q": "first"}, "b2": {"q": "second"}}))
    assert list(DatasetInput(path=keyed).rows()) == [{"id": "a1", "q": "first"}, {"id": "b2", "q": "second"}]
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"q": "one"}, {"q": "two"}]))
    assert [r["q"] for r in DatasetInput(path=listed).rows()] == ["one", "two"]
