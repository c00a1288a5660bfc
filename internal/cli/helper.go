package cli

import (
	"errors"
	"os"

	"github.com/spf13/pflag"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
)

// errHelperMode is the reason a --helper value is refused, the same for
// every command; Main words it "invalid --helper "X": want auto, always or
// never" (usageMessage).
var errHelperMode = errors.New("want auto, always or never")

// helperValue is the pflag value of --helper, a fcaps.HelperMode, for
// every command that has the flag (set, remove, backup, restore, verify,
// shift).
type helperValue struct{ p *fcaps.HelperMode }

func (v helperValue) String() string {
	if v.p == nil {
		return fcaps.HelperAuto.String()
	}
	return v.p.String()
}

func (v helperValue) Set(s string) error {
	m, err := fcaps.ParseHelperMode(s)
	if err != nil {
		return errHelperMode
	}
	*v.p = m
	return nil
}

// Type is "string" so that the help quotes the default ("auto") as it
// quotes those of the other word flags (--foreign-caps, --overwrite).
func (helperValue) Type() string { return "string" }

// addHelperFlag registers --helper (default auto) on fl; what says what
// the helper user namespace is used for ("write through a helper user
// namespace").
func addHelperFlag(fl *pflag.FlagSet, p *fcaps.HelperMode, what string) {
	*p = fcaps.HelperAuto
	fl.Var(helperValue{p}, "helper", what+": `auto`, always or never")
}

// useHelper says whether a restore or verify with these target maps goes
// through a helper user namespace: always, or with auto when there are
// target maps and the caller lacks privilege over owners and caps.
func useHelper(mode fcaps.HelperMode, uidMap userns.Map) bool {
	switch mode {
	case fcaps.HelperAlways:
		return true
	case fcaps.HelperAuto:
		return !uidMap.IsZero() && !privileged()
	case fcaps.HelperNever:
	}
	return false
}

// privileged reports whether the caller may set any owner and write any
// capability: CAP_CHOWN and CAP_SETFCAP in its effective set (which root
// has unless it dropped them).
func privileged() bool {
	eff, ok := sys.EffectiveCaps()
	if !ok {
		return os.Geteuid() == 0
	}
	const want = sys.CapChown | sys.CapSetfcap
	return eff&want == want
}
