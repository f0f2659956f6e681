package file

import (
	"sync/atomic"

	"github.com/sluicedev/sluice/flow"
)

// lineCount counts a source's lines by fate. Nothing here persists a
// position: a file or stdin source has no offset to commit, so the counts
// are what Close reports.
type lineCount struct {
	read, acked, failed atomic.Int64
}

func (c *lineCount) track(n int) *flow.Ack {
	c.read.Add(int64(n))
	return flow.NewAck(func(err error) {
		if err != nil {
			c.failed.Add(int64(n))
			return
		}
		c.acked.Add(int64(n))
	})
}
