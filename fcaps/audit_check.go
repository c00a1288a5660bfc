package fcaps

import (
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

// Check applies every rule (but the baseline ones) to e and returns its
// findings, the most severe first. An entry without any capability value
// (Raw nil, CapsErr nil and a zero Caps) still gets the rules on its
// value as given.
//
// A finding whose verdict depends on a guessed container uid map (see
// [Finding].MapGuessed) is reported at [SeverityLow] at most: NSCAP001,
// NSCAP004, and NSCAP002 (NSCAP011 for an interpreter) when only owners
// and groups (not mode bits) make the file writable.
func (a *Auditor) Check(e Entry) []Finding {
	if e.Raw != nil && e.CapsErr == nil {
		e.Caps, e.CapsErr = xattrfmt.Decode(e.Raw)
	}
	v := a.view(&e)
	sc := a.scope(&e, v)
	l := &findings{base: baseFinding(&e, v, sc)}
	regular := e.Mode.Type() == 0

	l.checkUnreadable(&e)
	if e.CapsErr == nil {
		a.checkValue(l, &e, v, sc, regular)
	}
	if regular {
		a.checkFile(l, &e, v)
	} else {
		l.add(RuleNonRegular, fmt.Sprintf("capabilities on a %s, where they have no effect (sign of tampering or of a broken copy)", typeText(e.Mode)))
	}
	out := l.out
	slices.SortStableFunc(out, func(x, y Finding) int {
		if x.Rule.Severity != y.Rule.Severity {
			return int(y.Rule.Severity) - int(x.Rule.Severity)
		}
		return strings.Compare(x.Rule.ID, y.Rule.ID)
	})
	return out
}

// findings collects the findings of one entry; each copies base.
type findings struct {
	base Finding
	out  []Finding
}

// baseFinding holds what every finding of e carries.
func baseFinding(e *Entry, v view, sc Scope) Finding {
	var caps *xattrfmt.FileCaps
	if e.CapsErr == nil {
		c := e.Caps
		caps = &c
	}
	base := Finding{Path: e.Path, Root: e.Root, Rel: e.Rel, Caps: caps, Scope: sc, Owner: e.UID, Layer: e.Layer}
	if n, err := v.uid.ToNs(e.UID); err == nil && !v.uid.IsZero() {
		base.OwnerInContainer = &n
	}
	if sc.InContainer {
		n := sc.ContainerRootID
		base.RootIDInContainer = &n
	}
	return base
}

func (l *findings) add(id, msg string) {
	f := l.base
	f.Rule, f.Message = mustRule(id), msg
	l.out = append(l.out, f)
}

// guess caps the finding just added when its verdict depends on a
// guessed map.
func (l *findings) guess() {
	f := &l.out[len(l.out)-1]
	f.MapGuessed = true
	if f.Rule.Severity > SeverityLow {
		f.Message += fmt.Sprintf(" (reported as low, not %s: the container uid map is a guess; give --uidmap to confirm)", f.Rule.Severity)
		f.Rule.Severity = SeverityLow
	}
}

// checkUnreadable applies NSCAP006 and NSCAP008: values that cannot be
// read as they are.
func (l *findings) checkUnreadable(e *Entry) {
	switch {
	case errors.Is(e.CapsErr, ErrNotVisible):
		l.add(RuleNotVisible, "capabilities of a user namespace the auditor cannot see (EOVERFLOW: the rootid is not mapped here)")
	case e.CapsErr != nil && e.Raw != nil:
		l.add(RuleMalformed, malformedText(e.Raw, e.CapsErr))
	case e.CapsErr != nil:
		l.add(RuleMalformed, "security.capability is listed but the kernel refuses to return it (EINVAL): an empty value (exec fails), revision 1 or stray flags (still honoured at exec)")
	case e.Caps.Revision == xattrfmt.Revision1:
		l.add(RuleMalformed, "revision-1 value: honoured at exec (capabilities 0-31, host-scoped) but getxattr refuses it with EINVAL, so getcap cannot show it")
	}
}

// checkValue applies the rules on a value that could be read: the
// inventory (NSCAP000) and NSCAP001, NSCAP003, NSCAP009 and NSCAP004.
func (a *Auditor) checkValue(l *findings, e *Entry, v view, sc Scope, regular bool) {
	where := scopeText(sc)
	desc := fmt.Sprintf("revision %d", e.Caps.Revision)
	if e.Caps.HasRootID() {
		desc += fmt.Sprintf(", rootid %d", e.Caps.RootID)
		switch {
		case sc.InContainer && sc.ContainerRootID == 0:
			desc += " (the container root)"
		case sc.InContainer:
			desc += fmt.Sprintf(" (container uid %d)", sc.ContainerRootID)
		}
	}
	l.add(RuleCapabilities, fmt.Sprintf("%s (%s), honoured in %s", e.Caps, desc, where))

	// NSCAP001: host-scoped inside a container rootfs.
	if v.in && regular && !e.Relative && hostScoped(e.Caps) {
		rev := fmt.Sprintf("revision %d", e.Caps.Revision)
		if e.Caps.HasRootID() {
			rev += ", rootid 0"
		}
		l.add(RuleHostScoped, fmt.Sprintf("host-scoped capabilities (%s) %s: honoured in every user namespace, the host's included", rev, v.why))
		if v.guessed {
			l.guess()
		}
	}

	// NSCAP003: root-equivalent capabilities.
	c := e.Caps.Caps()
	if bad := (c.Permitted | c.Inheritable) & RootEquivalentCaps; bad != 0 && regular {
		l.add(RuleRootEquivalent, fmt.Sprintf("grants %s, equivalent to full root where honoured (%s)", setNames(bad), where))
	}

	// NSCAP009: a host's rootid in an image layer.
	if e.Image && e.Caps.Revision == xattrfmt.Revision3 && e.Caps.RootID != 0 {
		l.add(RuleHostRootID, fmt.Sprintf("revision 3 with rootid %d in layer %s: a host uid of the machine that built the layer, so the capabilities are honoured nowhere the image will run", e.Caps.RootID, e.Layer))
	}

	// NSCAP004: orphaned rootid.
	if regular && e.Caps.Revision == xattrfmt.Revision3 && e.Caps.RootID != 0 && !e.Image {
		if msg, ok := a.orphaned(e, v); ok {
			l.add(RuleOrphanedRootID, msg)
			if v.guessed {
				l.guess()
			}
		}
	}
}

// checkFile applies the rules on a regular file: NSCAP002, NSCAP010,
// NSCAP011 and NSCAP005.
func (a *Auditor) checkFile(l *findings, e *Entry, v view) {
	// NSCAP002: writable or replaceable by non-root.
	if why, byMode := a.writable(e, v); why != "" {
		l.add(RuleWritable, why)
		if v.guessed && !byMode {
			l.guess()
		}
	}
	// NSCAP010, NSCAP011: a foreign binary run through binfmt_misc.
	if e.CapsErr == nil {
		a.checkBinfmt(e, v, l.add, func(s Severity) {
			f := &l.out[len(l.out)-1]
			if s < f.Rule.Severity || f.Rule.ID == RuleForeignArch {
				f.Rule.Severity = s
			}
		}, func(m *BinfmtMatch) { l.out[len(l.out)-1].Binfmt = m }, l.guess)
	}
	// NSCAP005: setuid/setgid.
	if bits := e.Mode & (fs.ModeSetuid | fs.ModeSetgid); bits != 0 {
		l.add(RuleSetID, fmt.Sprintf("capabilities on a %s file (mode %s)", setidText(bits), modeText(e.Mode)))
	}
}

// orphaned explains why e's rootid is dead, if it is.
func (a *Auditor) orphaned(e *Entry, v view) (string, bool) {
	r := e.Caps.RootID
	if e.Relative {
		if e.RelMap.IsZero() {
			return "", false
		}
		if _, err := e.RelMap.ToHost(r); err == nil {
			return "", false
		}
		return fmt.Sprintf("rootid %d is not mapped by the archive's uid map %s: the capabilities can never be honoured after a restore", r, e.RelMap), true
	}
	if a.roots == nil || len(a.roots[r]) > 0 {
		return "", false
	}
	if !v.uid.IsZero() {
		if _, err := v.uid.ToNs(r); err == nil {
			return "", false
		}
		return fmt.Sprintf("rootid %d is the root of no live user namespace and lies outside the container's uid map %s", r, v.uid), true
	}
	return fmt.Sprintf("rootid %d is the root of no live user namespace: the capabilities act nowhere (until a namespace with that root appears)", r), true
}

// writable explains how a non-root user can modify or replace e, or "";
// byMode says that mode bits alone make it so (world-writable), whoever
// counts as root.
func (a *Auditor) writable(e *Entry, v view) (string, bool) {
	var why []string
	byMode := false
	switch {
	case !a.isRootUID(e, v, e.UID):
		why = append(why, fmt.Sprintf("owned by non-root %s", v.uidText(e.UID)))
		byMode = e.Mode&0o002 != 0
	case e.Mode&0o002 != 0:
		why = append(why, fmt.Sprintf("world-writable (mode %s)", modeText(e.Mode)))
		byMode = true
	case e.Mode&0o020 != 0 && !a.isRootGID(e, v, e.GID):
		why = append(why, fmt.Sprintf("writable by non-root %s (mode %s)", v.gidText(e.GID), modeText(e.Mode)))
	}
	for _, d := range e.Dirs {
		var w string
		switch {
		case !a.isRootUID(e, v, d.UID):
			w = fmt.Sprintf("owned by non-root %s", v.uidText(d.UID))
			byMode = byMode || d.Mode&(fs.ModeSticky|0o002) == 0o002
		case d.Mode&fs.ModeSticky != 0:
			// Only the file's owner (root here) or the directory's
			// owner (root) may rename or remove it.
		case d.Mode&0o002 != 0:
			w = fmt.Sprintf("world-writable without the sticky bit (mode %s)", modeText(d.Mode|fs.ModeDir))
			byMode = true
		case d.Mode&0o020 != 0 && !a.isRootGID(e, v, d.GID):
			w = fmt.Sprintf("writable by non-root %s without the sticky bit (mode %s)", v.gidText(d.GID), modeText(d.Mode|fs.ModeDir))
		}
		if w != "" {
			why = append(why, fmt.Sprintf("its directory %s is %s, so the file can be replaced", d.Path, w))
			break
		}
	}
	if len(why) == 0 {
		return "", false
	}
	return "a non-root user can modify or replace this file with capabilities: " + strings.Join(why, "; "), byMode
}
