package cli

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/internal/testutil"
)

func TestNewGetCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    getOptions
		wantErr string
	}{
		{argv: "a", want: getOptions{Paths: []string{"a"}}},
		{argv: "-r -n -v a b", want: getOptions{Paths: []string{"a", "b"}, Recursive: true, RootID: true, Verbose: true}},
		{argv: "-rnv a", want: getOptions{Paths: []string{"a"}, Recursive: true, RootID: true, Verbose: true}},
		{argv: "--recursive --rootid --verbose --sort --xdev a", want: getOptions{Paths: []string{"a"}, Recursive: true, RootID: true, Verbose: true, Sort: true, XDev: true}},
		{argv: "--json -q --no-progress a", want: getOptions{Paths: []string{"a"}, JSON: true, Quiet: true, NoProgress: true}},
		{argv: "a --json", want: getOptions{Paths: []string{"a"}, JSON: true}},
		{argv: "", wantErr: "missing PATH"},
		{argv: "--frob a", wantErr: "unknown flag: --frob"},
		{argv: "-x a", wantErr: "unknown shorthand flag: 'x' in -x"},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newGetCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("get %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("get %s: error %v is not a usage error", tc.argv, err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(getOptions{}, "IO")); diff != "" {
				t.Errorf("get %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

// fixture is a directory of files with known caps, made with setcap (the
// oracle) and raw xattr writes.
type fixture struct {
	dir string
}

func newFixture(tb testing.TB) fixture {
	tb.Helper()
	testutil.RequireRoot(tb)
	testutil.RequireTool(tb, "setcap", "getcap")
	rfs := testutil.NewRawFS(tb)
	dir := rfs.Dir
	for _, sub := range []string{"d", "d/sub"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	fx := fixture{dir: dir}
	runTool(tb, "setcap", "cap_net_raw+ep", writeFile(tb, fx.path("d/v2")))
	runTool(tb, "setcap", "-n", "100000", "cap_net_admin,cap_net_raw=eip", writeFile(tb, fx.path("d/v3")))
	runTool(tb, "setcap", "-n", "3000000000", "cap_chown+p", writeFile(tb, fx.path("d/sub/v3big")))
	writeFile(tb, fx.path("d/none"))
	// An empty value: the kernel refuses to return it (EINVAL), as it
	// does for revision 1, and since 6.18 to store it: planted raw.
	testutil.NoErr(tb, rfs.Plant(testutil.CapAttr, map[string][]byte{writeFile(tb, fx.path("d/sub/empty")): {}}))
	if err := os.Symlink("v2", fx.path("d/link")); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Mkfifo(fx.path("d/fifo"), 0o644); err != nil {
		tb.Fatal(err)
	}
	return fx
}

func (fx fixture) path(rel string) string { return filepath.Join(fx.dir, rel) }

// relative replaces the fixture directory with $DIR in s.
func (fx fixture) relative(s string) string { return strings.ReplaceAll(s, fx.dir, "$DIR") }

func TestRunGet(t *testing.T) {
	fx := newFixture(t)
	tests := []struct {
		name       string
		args       []string
		wantOut    string
		wantErr    string
		wantCode   ExitCode
		sortOutput bool
	}{
		{
			name:    "v2",
			args:    []string{"get", "d/v2"},
			wantOut: "$DIR/d/v2 cap_net_raw=ep\n",
		},
		{
			name:    "v3 without -n prints like getcap",
			args:    []string{"get", "d/v3", "d/v2"},
			wantOut: "$DIR/d/v3 cap_net_admin,cap_net_raw=eip\n$DIR/d/v2 cap_net_raw=ep\n",
		},
		{
			name:    "-n prints unsigned rootid",
			args:    []string{"get", "-n", "d/v3", "d/sub/v3big"},
			wantOut: "$DIR/d/v3 cap_net_admin,cap_net_raw=eip [rootid=100000]\n$DIR/d/sub/v3big cap_chown=p [rootid=3000000000]\n",
		},
		{
			name: "no caps, symlink, fifo, directory: nothing",
			args: []string{"get", "d/none", "d/link", "d/fifo", "d"},
		},
		{
			name:    "-v lists them like getcap -v",
			args:    []string{"get", "-v", "d/none", "d/link", "d/fifo", "d"},
			wantOut: "$DIR/d/none\n$DIR/d/link (Not a regular file)\n$DIR/d/fifo (Not a regular file)\n$DIR/d (Not a regular file)\n",
		},
		{
			name:     "missing file fails, others still listed",
			args:     []string{"get", "d/missing", "d/v2"},
			wantOut:  "$DIR/d/v2 cap_net_raw=ep\n",
			wantErr:  "nscap: get $DIR/d/missing: no such file or directory\n",
			wantCode: ExitError,
		},
		{
			name:     "unreadable empty value fails",
			args:     []string{"get", "d/sub/empty"},
			wantErr:  "nscap: get $DIR/d/sub/empty: security.capability is present but the kernel refuses to return it (empty value, revision 1, unknown flags or wrong size) (invalid argument)\n",
			wantCode: ExitError,
		},
		{
			name:     "recursive sorted",
			args:     []string{"get", "-r", "-n", "--sort", "d"},
			wantOut:  "$DIR/d/sub/v3big cap_chown=p [rootid=3000000000]\n$DIR/d/v2 cap_net_raw=ep\n$DIR/d/v3 cap_net_admin,cap_net_raw=eip [rootid=100000]\n",
			wantErr:  "nscap: get $DIR/d/sub/empty: security.capability is present but the kernel refuses to return it (empty value, revision 1, unknown flags or wrong size) (invalid argument)\n",
			wantCode: ExitError,
		},
		{
			name:       "recursive unsorted has the same lines",
			args:       []string{"get", "-r", "d"},
			wantOut:    "$DIR/d/sub/v3big cap_chown=p\n$DIR/d/v2 cap_net_raw=ep\n$DIR/d/v3 cap_net_admin,cap_net_raw=eip\n",
			wantErr:    "nscap: get $DIR/d/sub/empty: security.capability is present but the kernel refuses to return it (empty value, revision 1, unknown flags or wrong size) (invalid argument)\n",
			wantCode:   ExitError,
			sortOutput: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := slices.Clone(tc.args)
			for i, a := range args {
				if i > 0 && !strings.HasPrefix(a, "-") {
					args[i] = fx.path(a)
				}
			}
			r := nscap(t, "", args...)
			out := fx.relative(r.Stdout)
			if tc.sortOutput {
				lines := strings.SplitAfter(out, "\n")
				slices.Sort(lines)
				out = strings.Join(lines, "")
			}
			got := result{Code: r.Code, Stdout: out, Stderr: fx.relative(r.Stderr)}
			want := result{Code: tc.wantCode, Stdout: tc.wantOut, Stderr: tc.wantErr}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("nscap %q mismatch (-want +got):\n%s", tc.args, diff)
			}
		})
	}
}

// The lines nscap get prints are the lines getcap prints.
func TestGetMatchesGetcap(t *testing.T) {
	fx := newFixture(t)
	for _, flags := range [][]string{nil, {"-n"}, {"-v"}, {"-r"}, {"-r", "-n"}, {"-r", "-v"}} {
		args := append(append([]string{}, flags...), fx.path("d"), fx.path("d/v2"), fx.path("d/v3"), fx.path("d/none"))
		want := runTool(t, "getcap", args...)
		r := nscap(t, "", append([]string{"get"}, args...)...)
		got := r.Stdout
		if slices.Contains(flags, "-n") {
			// getcap prints rootids of 2^31 and above as negative numbers.
			want = strings.ReplaceAll(want, "[rootid=-1294967296]", "[rootid=3000000000]")
		}
		if slices.Contains(flags, "-v") && slices.Contains(flags, "-r") {
			// getcap -r -v lists the directories it walks (and a fifo as
			// a file without caps); Scan reports regular files only.
			want = filterLines(want, func(l string) bool {
				return !strings.HasSuffix(l, "(Not a regular file)") && !strings.HasSuffix(l, "/d/fifo")
			})
			got = filterLines(got, func(l string) bool { return !strings.HasSuffix(l, "(Not a regular file)") })
		}
		if diff := cmp.Diff(sortLines(want), sortLines(got)); diff != "" {
			t.Errorf("getcap vs nscap get %q (-getcap +nscap):\n%s", flags, diff)
		}
	}
}

func sortLines(s string) []string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	slices.Sort(lines)
	return lines
}

func filterLines(s string, keep func(string) bool) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(s, "\n") {
		if l != "" && keep(strings.TrimSuffix(l, "\n")) {
			b.WriteString(l)
		}
	}
	return b.String()
}

func TestGetJSONGolden(t *testing.T) {
	fx := newFixture(t)
	r := nscap(t, "", "get", "--json", "-r", "-v", "--sort", fx.path("d"), fx.path("d/link"))
	if r.Code != ExitError {
		t.Errorf("exit %d, want %d (the empty value)", r.Code, ExitError)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if !json.Valid([]byte(line)) {
			t.Errorf("not a JSON line: %q", line)
		}
	}
	golden(t, "get-json", fx.relative(r.Stdout))
}

// On a terminal, get draws a counter on stderr and erases it before it
// prints and when done; stdout carries only the results.
func TestGetProgress(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		flags []string
		want  string
	}{
		{nil, "\r\x1b[Kfiles: 1\r\x1b[K"},
		{[]string{"--no-progress"}, ""},
		{[]string{"-q"}, ""},
	} {
		ios, _, out, errOut := Test()
		ios.IsStderrTTY = true
		args := append(append([]string{"get"}, tc.flags...), fx.path("d/v2"))
		if code := Main(t.Context(), args, ios); code != ExitOK {
			t.Fatalf("nscap %q: exit %d: %q", args, code, errOut.String())
		}
		if got := errOut.String(); got != tc.want {
			t.Errorf("nscap %q: stderr %q, want %q", args, got, tc.want)
		}
		if got, want := fx.relative(out.String()), "$DIR/d/v2 cap_net_raw=ep\n"; got != want {
			t.Errorf("nscap %q: stdout %q, want %q", args, got, want)
		}
	}
}

// get --json keeps a file name that is not valid UTF-8: "path" has U+FFFD
// for each bad byte (encoding/json), "path_base64" the exact bytes.
func TestGetJSONNonUTF8(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	names := []string{"latin1-caf\xe9", "\xff\xfe", "ok-café", "bad-\xc3"}
	for _, n := range names {
		runTool(t, "setcap", "cap_chown+ep", writeFile(t, filepath.Join(dir, n)))
	}
	type rec struct {
		Type       string `json:"type"`
		Path       string `json:"path"`
		PathBase64 string `json:"path_base64"`
		Caps       string `json:"caps"`
	}
	check := func(args ...string) {
		t.Helper()
		r := nscap(t, "", append([]string{"--json", "get"}, args...)...)
		if r.Code != ExitOK {
			t.Fatalf("get --json %q: %+v", args, r)
		}
		var got []string
		for line := range strings.SplitSeq(strings.TrimSuffix(r.Stdout, "\n"), "\n") {
			var x rec
			if err := json.Unmarshal([]byte(line), &x); err != nil {
				t.Fatalf("line %q: %v", line, err)
			}
			if x.Type != recFile {
				continue
			}
			name := x.Path
			if x.PathBase64 != "" {
				b, err := base64.StdEncoding.DecodeString(x.PathBase64)
				if err != nil {
					t.Fatalf("line %q: path_base64: %v", line, err)
				}
				name = string(b)
				if utf8.ValidString(name) {
					t.Errorf("line %q: path_base64 for a valid UTF-8 name", line)
				}
				// Each bad byte becomes U+FFFD (as range yields it).
				var lossy strings.Builder
				for _, r := range name {
					lossy.WriteRune(r)
				}
				if x.Path != lossy.String() {
					t.Errorf("line %q: path %q, want %q", line, x.Path, lossy.String())
				}
			} else if !utf8.ValidString(name) {
				t.Errorf("line %q: no path_base64", line)
			}
			if x.Caps != "cap_chown=ep" {
				t.Errorf("line %q: caps %q", line, x.Caps)
			}
			// The name decoded is the file's.
			if _, err := os.Lstat(name); err != nil {
				t.Errorf("line %q: %v", line, err)
			}
			got = append(got, name)
		}
		var want []string
		for _, n := range names {
			want = append(want, filepath.Join(dir, n))
		}
		slices.Sort(want)
		slices.Sort(got)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("get --json %q: names mismatch (-want +got):\n%s", args, diff)
		}
	}
	check("-r", dir)
	var paths []string
	for _, n := range names {
		paths = append(paths, filepath.Join(dir, n))
	}
	check(paths...)
}
