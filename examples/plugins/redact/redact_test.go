package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/plugins/sdk"
	"github.com/sluicedev/sluice/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRedactText(t *testing.T) {
	for in, want := range map[string]string{
		// Cards: Luhn-valid 13 to 19 digits, grouped or not; last 4 kept.
		"card 4111 1111 1111 1111 ok":   "card **** **** **** 1111 ok",
		"card 4111-1111-1111-1111":      "card ****-****-****-1111",
		"4111111111111111":              "************1111",
		"amex 3782 822463 10005":        "amex **** ****** *0005",
		"13 digits 4222222222222.":      "13 digits *********2222.",
		"19 digits 6011000990139424123": "19 digits 6011000990139424123", // Luhn fails: left alone
		"19 digits 4571736000000000007": "19 digits ***************0007",
		"card 4111 1111 1111 1111 123":  "card **** **** **** 1111 123", // a code after the number
		"not luhn 4111 1111 1111 1112":  "not luhn 4111 1111 1111 1112",
		"12 digits 411111111111":        "12 digits 411111111111",
		"rooms 41 11 11 11 11 11 11 11": "rooms 41 11 11 11 11 11 11 11", // small groups are not a card
		// Emails: all but the @.
		"mail ann.lee+x@mail.example.com now": "mail *********@**************** now",
		"not@mail":                            "not@mail",
		// Phones: international or North American shapes; digits masked.
		"call +1 (555) 123-4567": "call +* (***) ***-****",
		"call +44 20 7946 0958.": "call +** ** **** ****.",
		"call 555-123-4567":      "call ***-***-****",
		"call (555) 123 4567":    "call (***) *** ****",
		"call 555.123.4567 x":    "call ***.***.**** x",
		// Left alone: dates, amounts, ids, digits inside words.
		"on 2024-01-15 paid 1234.56":     "on 2024-01-15 paid 1234.56",
		"order 5551234567 and id7551234": "order 5551234567 and id7551234",
		"ref A555-123-4567":              "ref A555-123-4567",
		"":                               "",
	} {
		got, changed := redactText([]byte(in), []byte("*"))
		if string(got) != want {
			t.Errorf("redactText(%q)\n got %q\nwant %q", in, got, want)
		}
		if changed != (in != want) {
			t.Errorf("redactText(%q): changed = %v", in, changed)
		}
	}
}

func newRedact(t *testing.T, cfg map[string]any) *sdktest.Plugin {
	t.Helper()
	var rd redactor
	p := sdktest.New(t, rd.plugin(), sdk.WithConfig(&rd.cfg))
	if err := p.Configure(cfg); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	return p
}

func values(t *testing.T, p *sdktest.Plugin, in ...string) []string {
	t.Helper()
	recs := make([]sdk.Record, len(in))
	for i, v := range in {
		recs[i] = sdk.Record{Value: []byte(v)}
	}
	var out []string
	for i, res := range p.Process(recs...) {
		if res.Err != nil || len(res.Outputs) != 1 {
			t.Fatalf("record %d (%s): %d outputs, error %v", i, in[i], len(res.Outputs), res.Err)
		}
		out = append(out, string(res.Outputs[0].Value))
	}
	return out
}

func TestRedactJSONEveryString(t *testing.T) {
	p := newRedact(t, nil)
	got := values(t, p,
		`{"user":{"email":"a@b.io","tags":["x","555-123-4567"]},"n":12345678901234567890,"ok":true,"z":null,"card":"4111111111111111"}`,
		`{ "nothing": "to see", "n": 1.50 }`,
		`"top-level a@b.io"`,
		`plain a@b.io, card 4111 1111 1111 1111`,
		`{"half": "a@b.io"`, // not JSON: redacted as text
		``,
		`4111111111111111`, // a JSON number, yet a card
	)
	want := []string{
		`{"user":{"email":"*@****","tags":["x","***-***-****"]},"n":12345678901234567890,"ok":true,"z":null,"card":"************1111"}`,
		`{ "nothing": "to see", "n": 1.50 }`, // nothing masked: the bytes are untouched
		`"top-level *@****"`,
		`plain *@****, card **** **** **** 1111`,
		`{"half": "*@****"`,
		``,
		`************1111`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func TestRedactSelectedFields(t *testing.T) {
	p := newRedact(t, map[string]any{"fields": []string{"email", "contact.note"}, "mask": "#"})
	got := values(t, p,
		`{"email":"a@b.io","note":"a@b.io","contact":{"note":"call 555-123-4567","email":["c@d.io"]},"deep":{"email":"e@f.io"}}`,
		`"a@b.io"`,
	)
	want := []string{
		`{"email":"#@####","note":"a@b.io","contact":{"note":"call ###-###-####","email":["#@####"]},"deep":{"email":"#@####"}}`,
		`"a@b.io"`, // a bare string is under no field
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}

func TestRedactMultibyteMask(t *testing.T) {
	p := newRedact(t, map[string]any{"mask": "•"})
	if got := values(t, p, `card 4111111111111111 <é>`)[0]; got != `card ••••••••••••1111 <é>` {
		t.Errorf("got %s", got)
	}
}

func TestRedactConfigErrors(t *testing.T) {
	var rd redactor
	p := sdktest.New(t, rd.plugin(), sdk.WithConfig(&rd.cfg))
	err := p.Configure(map[string]any{"fields": []string{"ok", "", "a..b"}, "mask": "xy"})
	got := map[string]string{}
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var fe *sdk.FieldError
		if !errors.As(e, &fe) {
			t.Fatalf("%v is not a FieldError", e)
		}
		got[fe.Field] = fe.Message
	}
	if len(got) != 3 || got["fields.1"] == "" || got["fields.2"] == "" || !strings.Contains(got["mask"], "single character") {
		t.Errorf("errors %v, want fields.1, fields.2 and mask", got)
	}
	if err := p.Configure(map[string]any{"mask": "7"}); err == nil || !strings.Contains(err.Error(), "letter or digit") {
		t.Errorf("digit mask: %v", err)
	}
}

func TestRedactBinary(t *testing.T) {
	dir, err := filepath.Abs(".") // sdktest.Build names the binary after the directory
	if err != nil {
		t.Fatal(err)
	}
	p := sdktest.Exec(t, sdktest.Build(t, dir), nil)
	if info := p.Info(); info.Name != "redact" || info.ProtocolVersion != 1 {
		t.Fatalf("Info = %+v", info)
	}
	if err := p.Configure(map[string]any{"fields": []string{"email"}}); err != nil {
		t.Fatal(err)
	}
	res := p.Process(sdk.Record{Key: []byte("k"), Value: []byte(`{"email":"a@b.io","other":"c@d.io"}`)})
	if res[0].Err != nil || string(res[0].Outputs[0].Value) != `{"email":"*@****","other":"c@d.io"}` || string(res[0].Outputs[0].Key) != "k" {
		t.Fatalf("got %+v", res[0])
	}
	if err := p.Drain(); err != nil {
		t.Fatal(err)
	}
}
