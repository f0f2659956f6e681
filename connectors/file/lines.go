package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sluicedev/sluice/flow"
)

const readBuffer = 64 << 10

// lineReader splits a stream into lines no longer than maxLine and turns
// them into records numbered from 1, like an editor numbers lines.
type lineReader struct {
	r       *bufio.Reader
	name    string // path or "stdin", for errors
	source  string // node id, for Origin
	maxLine int
	// keepPartial holds an unterminated last line back at EOF (the writer
	// may still be appending to it) instead of returning it.
	keepPartial bool

	lines   int64  // complete lines returned so far
	long    []byte // a line spanning bufio fills, or a held-back partial line
	partial bool   // long holds a held-back partial line
}

func newLineReader(r io.Reader, name, source string, maxLine int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(r, readBuffer), name: name, source: source, maxLine: maxLine}
}

// ErrLineTooLong is wrapped by the error a source returns for a line past
// max_line.
var ErrLineTooLong = errors.New("line too long")

// readLine returns the next line without its '\n', valid until the next
// call, or io.EOF when no further line is available.
func (lr *lineReader) readLine() ([]byte, error) {
	if !lr.partial {
		lr.long = lr.long[:0]
	}
	lr.partial = false
	for {
		frag, err := lr.r.ReadSlice('\n')
		switch {
		case err == nil:
			frag = frag[:len(frag)-1]
			if len(lr.long) == 0 {
				return lr.line(frag)
			}
			lr.long = append(lr.long, frag...)
			return lr.line(lr.long)
		case errors.Is(err, bufio.ErrBufferFull):
			lr.long = append(lr.long, frag...)
			if len(lr.long) > lr.maxLine {
				return nil, lr.tooLong()
			}
		case errors.Is(err, io.EOF):
			lr.long = append(lr.long, frag...)
			if len(lr.long) == 0 {
				return nil, io.EOF
			}
			if lr.keepPartial {
				lr.partial = true
				return nil, io.EOF
			}
			return lr.line(lr.long)
		default:
			return nil, fmt.Errorf("read %s after line %d: %w", lr.name, lr.lines, err)
		}
	}
}

func (lr *lineReader) line(b []byte) ([]byte, error) {
	if len(b) > lr.maxLine {
		return nil, lr.tooLong()
	}
	lr.lines++
	return b, nil
}

func (lr *lineReader) tooLong() error {
	return fmt.Errorf("%s:%d: %w: longer than max_line (%d bytes); raise max_line or fix the input", lr.name, lr.lines+1, ErrLineTooLong, lr.maxLine)
}

// readBatch reads up to max lines into records whose values share one
// arena. With stopWhenIdle it returns as soon as the next read would wait
// for the underlying reader, so a slow writer's lines (a terminal, a pipe)
// are not held back until a batch fills. err is io.EOF at the end of input,
// possibly together with the last records.
func (lr *lineReader) readBatch(max int, stopWhenIdle bool) ([]flow.Record, error) {
	var recs []flow.Record
	arena := make([]byte, 0, min(lr.r.Buffered(), readBuffer)+64)
	now := time.Now()
	for len(recs) < max {
		if stopWhenIdle && len(recs) > 0 && lr.r.Buffered() == 0 {
			return recs, nil
		}
		line, err := lr.readLine()
		if err != nil {
			return recs, err
		}
		if recs == nil {
			recs = make([]flow.Record, 0, max)
		}
		start := len(arena)
		arena = append(arena, line...)
		recs = append(recs, flow.Record{
			Value:     arena[start:len(arena):len(arena)],
			Timestamp: now,
			Origin:    flow.Origin{Source: lr.source, Offset: lr.lines},
		})
	}
	return recs, nil
}
