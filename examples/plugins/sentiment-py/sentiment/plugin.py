"""The sentiment-py plugin: adds a sentiment score to JSON records.

For every record (a JSON object), the text in member `field` is scored and
the object gains member `target`:

    {"score": 0.71, "label": "positive", "words": ["great", "fast"]}

A record that is not a JSON object, or whose `field` is not a string, fails
alone (it goes to the node's on_error). With `drop_neutral`, neutral
records are filtered out.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from sluice_plugin import ConfigError, FieldError, Plugin, serve

from .score import label, score

VERSION = "1.0.0"
log = logging.getLogger("sentiment")


@dataclasses.dataclass
class Config:
    # The member holding the text.
    field: str = "text"
    # The member the result is written to.
    target: str = "sentiment"
    # |score| at or above this is positive or negative, else neutral.
    threshold: float = 0.3
    # Filter out neutral records.
    drop_neutral: bool = False
    # Extra words and their weights (-3..3), e.g. {"laggy": -2}.
    words: dict[str, float] = dataclasses.field(default_factory=dict)

    def validate(self):
        errs = []
        if not self.field:
            errs.append(FieldError("field", "required"))
        if not self.target:
            errs.append(FieldError("target", "required"))
        if not 0 < self.threshold < 1:
            errs.append(FieldError("threshold", f"must be between 0 and 1, got {self.threshold}"))
        for w, v in self.words.items():
            if not -3 <= v <= 3:
                errs.append(FieldError(f"words.{w}", f"weight must be between -3 and 3, got {v}"))
        if errs:
            raise ConfigError(errs)


def process_batch(records, out):
    """The batch form: outputs and failures by input index, in order."""
    cfg: Config = plugin.config
    extra = {w.lower(): float(v) for w, v in cfg.words.items()}
    for i, record in enumerate(records):
        try:
            value = json.loads(record.value)
        except (TypeError, ValueError) as e:
            out.fail(i, f"value is not JSON: {e}")
            continue
        if not isinstance(value, dict):
            out.fail(i, "value is not a JSON object")
            continue
        text = value.get(cfg.field)
        if not isinstance(text, str):
            out.fail(i, f"member {cfg.field!r} is missing or not a string")
            continue
        s, words = score(text, extra)
        lab = label(s, cfg.threshold)
        if cfg.drop_neutral and lab == "neutral":
            continue  # no output: filtered out
        value[cfg.target] = {"score": round(s, 3), "label": lab, "words": words}
        record.value = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        out.emit(i, record)


def drain():
    log.info("drained")


plugin = Plugin("sentiment-py", VERSION, process_batch=process_batch, config=Config, drain=drain)


def main() -> None:
    serve(plugin)


if __name__ == "__main__":
    main()
