// Package state is the contract between stages that keep state per source
// partition (window, dedupe) and the sources able to keep that state
// durable: a compacted changelog topic per stage and source topic, in the
// cluster the records come from, with one changelog partition per source
// partition.
//
// A stage finds the Provider on a record's lease (flow.Origin.Lease.Owner).
// Every change to a partition's state is written to the changelog partition
// of the same number before the records that caused it are acknowledged;
// when the partition is assigned again (here or to another member) the
// state is rebuilt by reading that changelog partition from its start.
package state

import (
	"context"
	"errors"
)

// Provider is the optional capability of a source that can keep
// changelogs (the Kafka source).
type Provider interface {
	// Changelog opens the changelog of one stage for one source topic,
	// creating it if missing (compacted, with the source topic's partition
	// count). An existing changelog with another partition count is
	// refused: its partitions would not match the source's.
	Changelog(ctx context.Context, spec Spec) (Changelog, error)
}

// Spec names a changelog.
type Spec struct {
	Stage  string // node id of the stage
	Topic  string // the source topic whose partitions the state follows
	Prefix string // topic name prefix; "" is "<consumer group>-<stage>"
}

// Entry is one change to a partition's state: Value nil deletes Key.
type Entry struct {
	Partition  int32
	Key, Value []byte
}

// Changelog is one stage's changelog for one source topic.
type Changelog interface {
	// Name is the changelog topic.
	Name() string
	// Write appends entries and returns once the brokers acknowledged all
	// of them (acks=all). Entries of one partition are appended in the
	// order given, and after those of earlier Writes.
	Write(ctx context.Context, entries []Entry) error
	// Restore calls fn with every entry of partition, oldest first, from
	// the start of the log up to its end when Restore was called (deletions
	// included, with a nil value), and returns the number of entries read.
	Restore(ctx context.Context, partition int32, fn func(key, value []byte) error) (int64, error)
	// End is the partition's end offset (the next offset to be written).
	End(ctx context.Context, partition int32) (int64, error)
	// Close releases the changelog's connections.
	Close(ctx context.Context) error
}

// ErrNoProvider is returned for records whose source keeps no changelog.
var ErrNoProvider = errors.New("durable state needs records from a Kafka source (their partitions are what state belongs to); this record came from a source without partitions")

// ProviderOf returns the provider on a record's lease owner, if any.
func ProviderOf(owner any) (Provider, bool) {
	p, ok := owner.(Provider)
	return p, ok
}
