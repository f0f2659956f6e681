import json
import os
import sys

import pytest

from sluice_plugin import FieldError, Record
from sluice_plugin.testing import exec_plugin, in_process

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sentiment.plugin import plugin  # noqa: E402
from sentiment.score import label, score  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("text,want", [
    ("Great product, really fast delivery!", "positive"),
    ("Terrible. It broke after a day and support was rude.", "negative"),
    ("The box is blue.", "neutral"),
    ("not good at all", "negative"),
    ("I don't hate it", "positive"),
])
def test_labels(text, want):
    s, _ = score(text)
    assert label(s, 0.3) == want, (text, s)


def test_intensifier_and_extra_words():
    assert score("very good")[0] > score("good")[0]
    s, words = score("a laggy mess", {"laggy": -2.0})
    assert s < 0 and words == ["laggy"]


def value(rec):
    return json.loads(rec.value)


def test_plugin_scores_and_fails_bad_records():
    with in_process(plugin) as p:
        assert p.configure({"threshold": 0.3}) == []
        res = p.process(Record(b'{"id":1,"text":"I love it"}'), Record(b"not json"),
                        Record(b'{"id":3}'), Record(b'{"id":4,"text":"meh, slow and buggy"}'))
    assert value(res[0].outputs[0])["sentiment"]["label"] == "positive"
    assert res[1].error.startswith("value is not JSON")
    assert res[2].error == "member 'text' is missing or not a string"
    assert value(res[3].outputs[0])["sentiment"] == {"score": -0.898, "label": "negative", "words": ["meh", "slow", "buggy"]}


def test_drop_neutral_and_target():
    with in_process(plugin) as p:
        assert p.configure({"drop_neutral": True, "target": "s", "field": "t"}) == []
        res = p.process(Record(b'{"t":"the box is blue"}'), Record(b'{"t":"good"}'))
    assert res[0].outputs == [] and res[0].error is None
    assert value(res[1].outputs[0])["s"]["label"] == "positive"


def test_config_errors():
    with in_process(plugin) as p:
        assert p.configure({"threshold": 2, "words": {"x": 9}}) == [
            FieldError("threshold", "must be between 0 and 1, got 2.0"),
            FieldError("words.x", "weight must be between -3 and 3, got 9.0"),
        ]
        assert p.configure({"treshold": 0.5}) == [FieldError("treshold", "unknown field")]


def test_launcher_starts_it_as_sluice_would():
    with exec_plugin([os.path.join(HERE, "..", "plugin.sh")]) as p:
        assert p.info().name == "sentiment-py"
        assert p.configure(None) == []
        res = p.process(Record(b'{"text":"excellent"}'))
        assert value(res[0].outputs[0])["sentiment"]["label"] == "positive"
