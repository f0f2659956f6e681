package generate

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// encoder renders records without fmt or encoding/json on the hot path: the
// template is marshalled once at Build, each record only appends its seq.
type encoder struct {
	tail    []byte   // `,"a":1,"b":"x"}` or `}`
	keyPart []string // key template split around {seq}; nil means no key
}

const seqPlaceholder = "{seq}"

func newEncoder(key string, template map[string]any) (*encoder, error) {
	e := &encoder{tail: []byte("}")}
	if key != "" {
		e.keyPart = strings.Split(key, seqPlaceholder)
	}
	if len(template) == 0 {
		return e, nil
	}
	if _, ok := template["seq"]; ok {
		return nil, errors.New(`key "seq" is reserved: the generator sets it`)
	}
	js, err := json.Marshal(template) // sorts keys: stable output
	if err != nil {
		return nil, fmt.Errorf("cannot encode as JSON: %v", err)
	}
	// js is `{...}`: keep the fields and the closing brace.
	e.tail = append([]byte{','}, js[1:]...)
	return e, nil
}

const valuePrefix = `{"seq":`

// recordSize bounds the bytes one record takes when its seq has at most
// digits digits: sizing the arena exactly avoids zeroing memory never used.
func (e *encoder) recordSize(digits int) int {
	n := len(valuePrefix) + digits + len(e.tail)
	for i, p := range e.keyPart {
		n += len(p)
		if i > 0 {
			n += digits
		}
	}
	return n
}

func decimalDigits(n int64) int {
	d := 1
	for ; n >= 10; n /= 10 {
		d++
	}
	return d
}

// batch renders records first..first+n-1 into a new array (fill).
func (e *encoder) batch(source string, first int64, n int, now time.Time) []flow.Record {
	return e.fill(make([]flow.Record, n), source, first, now)
}

// fill renders records first..first+len(recs)-1 into recs (which may be
// an array a batch already went through: every field is set, those that
// already hold the right value are not written again, which spares the
// garbage collector's write barriers) and their bytes into one freshly
// allocated arena (the previous batch's bytes may still be downstream, and
// emitted bytes are immutable). Slices are capped so an append by a stage
// cannot spill into a neighbour.
func (e *encoder) fill(recs []flow.Record, source string, first int64, now time.Time) []flow.Record {
	n := len(recs)
	arena := make([]byte, 0, n*e.recordSize(decimalDigits(first+int64(n)-1)))
	var seq counter
	seq.set(first)
	for i := range recs {
		r := &recs[i]
		digits := seq.digits()
		if e.keyPart != nil {
			start := len(arena)
			for j, p := range e.keyPart {
				if j > 0 {
					arena = append(arena, digits...)
				}
				arena = append(arena, p...)
			}
			r.Key = arena[start:len(arena):len(arena)]
		} else if r.Key != nil {
			r.Key = nil
		}
		start := len(arena)
		arena = append(arena, valuePrefix...)
		arena = append(arena, digits...)
		arena = append(arena, e.tail...)
		r.Value = arena[start:len(arena):len(arena)]
		if r.Headers != nil {
			r.Headers = nil
		}
		if r.Timestamp != now { // the same instant, location and all
			r.Timestamp = now
		}
		if r.Origin.Source != source || r.Origin.Topic != "" {
			r.Origin = flow.Origin{Source: source}
		}
		r.Origin.Partition = 0
		r.Origin.Offset = first + int64(i)
		seq.next()
	}
	return recs
}

// counter is a non-negative number in decimal, counted up a digit at a
// time: cheaper than formatting each number anew.
type counter struct {
	buf   [20]byte // the digits end at the array's end
	start int
}

func (c *counter) set(n int64) {
	c.start = len(c.buf)
	for {
		c.start--
		c.buf[c.start] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return
		}
	}
}

func (c *counter) digits() []byte { return c.buf[c.start:] }

func (c *counter) next() {
	for i := len(c.buf) - 1; i >= c.start; i-- {
		if c.buf[i] != '9' {
			c.buf[i]++
			return
		}
		c.buf[i] = '0'
	}
	c.start--
	c.buf[c.start] = '1'
}
