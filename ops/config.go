package ops

import (
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/sluicedev/sluice/registry"
)

// DefaultListen is where the listener binds when settings.http.listen is
// not set: loopback only, so nothing is exposed by default.
const DefaultListen = "127.0.0.1:9464"

// Config is the settings.http block.
type Config struct {
	// Listen is host:port; "" turns the listener off. Port 0 picks a free
	// port (Server.Addr tells which).
	Listen string
	// Token, when set, is the bearer token every endpoint but /healthz
	// demands.
	Token string
	// Pprof serves /debug/pprof/.
	Pprof bool
}

// Enabled reports whether the listener is wanted.
func (c Config) Enabled() bool { return c.Listen != "" }

// SettingError is a bad value in settings.http, a config mistake found
// before anything is built. Key names the setting within the block
// ("listen"), for the caller to point at where it was written.
type SettingError struct {
	Key   string
	Value string
	Err   error
}

func (e *SettingError) Error() string {
	return fmt.Sprintf("settings.http.%s %q: %v", e.Key, e.Value, e.Err)
}

func (e *SettingError) Unwrap() error { return e.Err }

// ConfigFrom reads the http block of a pipeline's settings. A listen value
// that is not host:port with a port in 0..65535, and a token that is set
// but empty (which would read as no token: every endpoint open), are
// *SettingError.
func ConfigFrom(settings *registry.Conf) (Config, error) {
	cfg := Config{Listen: DefaultListen}
	if settings == nil {
		return cfg, nil
	}
	h := settings.Object("http")
	if h.Has("listen") {
		cfg.Listen = h.String("listen")
	}
	cfg.Token = h.String("token")
	cfg.Pprof = h.Bool("pprof")
	if err := checkListen(cfg.Listen); err != nil {
		return Config{}, &SettingError{Key: "listen", Value: cfg.Listen, Err: err}
	}
	if h.Has("token") && cfg.Token == "" {
		return Config{}, &SettingError{Key: "token", Err: errors.New("an empty token would turn authentication off: set a token, or leave the key out to serve without one")}
	}
	return cfg, nil
}

func checkListen(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("want host:port, as in %s or :9464 (\"\" turns the listener off)", DefaultListen)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}
