package flow

import (
	"fmt"
	"strconv"
	"time"
)

// Action is what happens to a record that still fails after its retries.
type Action string

const (
	// ActionFail drains the pipeline and makes Run return an error naming the
	// record's origin. The record's source is told, so it is not committed.
	ActionFail Action = "fail"
	// ActionSkip drops the record and counts it as handled.
	ActionSkip Action = "skip"
	// ActionDeadLetter writes the record to the dead-letter sink; the
	// confirmed write acknowledges it.
	ActionDeadLetter Action = "dead_letter"
	// ActionRetry retries (Retries times) and then fails.
	ActionRetry Action = "retry"
)

// ErrorPolicy is a node's on_error setting.
type ErrorPolicy struct {
	Action     Action
	Retries    int
	Backoff    Backoff
	Timeout    time.Duration // per call; 0 = none
	DeadLetter string        // sink id, with ActionDeadLetter
}

// Dead-letter headers added to a record sent to a dead-letter sink.
const (
	HeaderError     = "sluice.error"
	HeaderStage     = "sluice.stage"
	HeaderAttempts  = "sluice.attempts"
	HeaderSource    = "sluice.source"
	HeaderTopic     = "sluice.source.topic"
	HeaderPartition = "sluice.source.partition"
	HeaderOffset    = "sluice.source.offset"
	HeaderTime      = "sluice.time"
)

func deadLetter(node string, f RecordError, now time.Time) Record {
	r := f.Record
	hs := make([]Header, 0, len(r.Headers)+8)
	hs = append(hs, r.Headers...)
	hs = append(hs,
		Header{HeaderError, []byte(f.Err.Error())},
		Header{HeaderStage, []byte(node)},
		Header{HeaderAttempts, strconv.AppendInt(nil, int64(max(f.Attempts, 1)), 10)},
		Header{HeaderSource, []byte(r.Origin.Source)},
		Header{HeaderTopic, []byte(r.Origin.Topic)},
		Header{HeaderPartition, strconv.AppendInt(nil, int64(r.Origin.Partition), 10)},
		Header{HeaderOffset, strconv.AppendInt(nil, r.Origin.Offset, 10)},
		Header{HeaderTime, now.UTC().AppendFormat(nil, time.RFC3339Nano)},
	)
	r.Headers = hs
	return r
}

// RecordFailure is the error Run returns when a record failed under
// ActionFail (or ActionRetry after its retries).
type RecordFailure struct {
	Node   string
	Origin Origin
	Err    error
}

func (e *RecordFailure) Error() string {
	o := e.Origin
	where := "source " + o.Source
	if o.Topic != "" {
		where += fmt.Sprintf(" topic %s partition %d offset %d", o.Topic, o.Partition, o.Offset)
	} else {
		where += fmt.Sprintf(" offset %d", o.Offset)
	}
	return fmt.Sprintf("%s: record from %s failed: %v", e.Node, where, e.Err)
}

func (e *RecordFailure) Unwrap() error { return e.Err }
