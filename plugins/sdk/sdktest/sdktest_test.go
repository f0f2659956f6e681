package sdktest_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicedev/sluice/plugins/sdk"
	"github.com/sluicedev/sluice/plugins/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInProcessRoundTrip(t *testing.T) {
	p := sdktest.New(t, sdk.Plugin{Name: "rev", Version: "0.1.0", Process: func(_ context.Context, r sdk.Record) ([]sdk.Record, error) {
		r.Key = []byte("k-" + string(r.Value))
		return []sdk.Record{r}, nil
	}})
	if info := p.Info(); info.Name != "rev" || info.Version != "0.1.0" || info.SDK == "" {
		t.Fatalf("info %+v", info)
	}
	res := p.Process(sdk.Record{Value: []byte("x")}, sdk.Record{Value: []byte("y")})
	if len(res) != 2 || string(res[0].Outputs[0].Key) != "k-x" || string(res[1].Outputs[0].Key) != "k-y" {
		t.Fatalf("results %+v", res)
	}
	if pid := p.Pid(); pid != 0 {
		t.Errorf("in-process pid = %d, want 0", pid)
	}
}

func TestExecDoesNotInheritEnvironment(t *testing.T) {
	t.Setenv("SDKTEST_HOST_SECRET", "leak")
	p := sdktest.Exec(t, sdktest.Build(t, "../../testdata/passthrough"), map[string]string{"ONLY": "this"})
	env := string(p.Process(sdk.Record{Value: []byte("env")})[0].Outputs[0].Value)
	if strings.Contains(env, "SDKTEST_HOST_SECRET") || !strings.Contains(env, "ONLY=this") {
		t.Fatalf("plugin environment:\n%s", env)
	}
	if err := p.Drain(); err != nil {
		t.Fatalf("drain: %v", err)
	}
}
