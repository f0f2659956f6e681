package jsonobj

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSetKeepsOrderAndBytes(t *testing.T) {
	obj, err := Parse([]byte(`{"b": 1, "big": 123456789012345678901234567890, "a": {"x": [1, 2]}}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(obj.Set("t", []byte(`{"k":"v"}`))), `{"b":1,"big":123456789012345678901234567890,"a":{"x": [1, 2]},"t":{"k":"v"}}`; got != want {
		t.Fatalf("append:\n got %s\nwant %s", got, want)
	}
	if got, want := string(obj.Set("b", []byte(`null`))), `{"b":null,"big":123456789012345678901234567890,"a":{"x": [1, 2]}}`; got != want {
		t.Fatalf("replace:\n got %s\nwant %s", got, want)
	}
}

func TestDuplicateKeysLastWins(t *testing.T) {
	obj, err := Parse([]byte(`{"k":1,"o":0,"k":2}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := obj.Get("k"); string(v) != "2" {
		t.Fatalf("Get = %s, want 2", v)
	}
	if got := string(obj.Set("k", []byte("3"))); got != `{"o":0,"k":3}` {
		t.Fatalf("Set = %s", got)
	}
}

func TestEmptyObject(t *testing.T) {
	obj, err := Parse([]byte(` {} `))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(obj.Set("a<b", []byte(`"&"`))); got != `{"a<b":"&"}` {
		t.Fatalf("Set = %s", got)
	}
}

func TestParseRefusesNonObjects(t *testing.T) {
	for in, want := range map[string]string{
		``:         "empty",
		`[1]`:      "got an array",
		`"s"`:      "got a string",
		`{"a":1`:   "invalid JSON",
		`{"a":1}x`: "data after the object",
		`{"a":}`:   "invalid JSON",
		`not json`: "invalid JSON",
	} {
		_, err := Parse([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}
