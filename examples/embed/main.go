// Command embed builds and runs a sluice pipeline from Go code, without
// YAML: a source of numbers, a Processor keeping the multiples of three,
// and a sink printing them. The YAML loader builds pipelines with the very
// same API.
package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sluicedev/sluice/flow"
)

// numbers emits 1..n in batches; each batch carries one Ack, which fires
// once every record of the batch was written or filtered out.
type numbers struct{ n int }

func (s numbers) Run(ctx context.Context, out flow.Emitter) error {
	for i := 1; i <= s.n; i += 10 {
		var recs []flow.Record
		for j := i; j < i+10 && j <= s.n; j++ {
			recs = append(recs, flow.Record{Value: []byte(strconv.Itoa(j)), Origin: flow.Origin{Source: "numbers", Offset: int64(j)}})
		}
		first, last := i, i+len(recs)-1
		ack := flow.NewAck(func(err error) {
			if err == nil {
				log.Printf("records %d..%d are safe", first, last)
			}
		})
		if err := out.Emit(ctx, flow.NewBatch(recs, ack)); err != nil {
			return nil // draining
		}
	}
	return nil
}

// thirds keeps multiples of three. A Processor gets a whole batch.
var thirds = flow.ProcessFunc(func(_ context.Context, in []flow.Record, out *flow.Output) error {
	for _, r := range in {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil {
			out.Errors = append(out.Errors, flow.RecordError{Record: r, Err: err})
			continue
		}
		if n%3 == 0 {
			out.Records = append(out.Records, r)
		}
	}
	return nil
})

// printer is a Sink: Write returns once the records are written.
type printer struct{}

func (printer) Write(_ context.Context, recs []flow.Record) error {
	for _, r := range recs {
		fmt.Println(string(r.Value))
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := flow.New("embedded", flow.WithBuffer(100), flow.WithDrainTimeout(5*time.Second)).
		Source("numbers", numbers{n: 100}).
		Stage("thirds", flow.ProcessorStage(thirds), flow.Inputs("numbers"),
			flow.OnError(flow.ErrorPolicy{Action: flow.ActionSkip, Retries: 2})).
		Sink("print", printer{}, flow.Inputs("thirds"))
	if err := p.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
