package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// The files of subordinate ids (subuid(5), subgid(5)) that newuidmap(1)
// and newgidmap(1) read.
const (
	SubUIDFile = "/etc/subuid"
	SubGIDFile = "/etc/subgid"
)

// OwnedIDs are the ids of one kind that the caller owns in its namespace:
// its own id and its subordinate ranges in one file, all that
// newuidmap(1) or newgidmap(1) lets it map.
type OwnedIDs struct {
	// Kind is "uid" or "gid".
	Kind string
	// Self is the caller's real uid or gid.
	Self uint32
	// User is the name of the caller's user ("" when it has none), whose
	// lines File holds with those of its uid.
	User string
	// File is the file of subordinate ids read.
	File string
	// Ranges are the caller's ranges in File, in file order.
	Ranges []SubIDRange
	// Err says why there are no Ranges: it wraps [ErrNoSubID] or
	// [fs.ErrNotExist] for a caller with none, or is another error of
	// reading File.
	Err error
}

// CallerUIDs returns the uids the caller owns: its real uid and its
// ranges in file ([SubUIDFile] when empty), whose lines name its user by
// name or by uid, as newuidmap(1) matches them.
func CallerUIDs(file string) OwnedIDs {
	return callerIDs("uid", file, SubUIDFile, uint32(os.Getuid()))
}

// CallerGIDs returns the gids the caller owns: its real gid and the
// ranges of its user in file ([SubGIDFile] when empty), whose lines name
// the user by name or by uid, as newgidmap(1) matches them.
func CallerGIDs(file string) OwnedIDs {
	return callerIDs("gid", file, SubGIDFile, uint32(os.Getgid()))
}

func callerIDs(kind, file, def string, self uint32) OwnedIDs {
	if file == "" {
		file = def
	}
	uid := uint32(os.Getuid())
	name := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		name = u.Username
	}
	o := OwnedIDs{Kind: kind, Self: self, File: file, User: name}
	o.Ranges, o.Err = ReadSubID(file, name, uid)
	return o
}

// None reports whether the caller has no subordinate ids of this kind:
// no range for it in File, or no File.
func (o OwnedIDs) None() bool {
	return errors.Is(o.Err, ErrNoSubID) || errors.Is(o.Err, fs.ErrNotExist)
}

// RangesText lists the ranges in file order as "400000-465535,
// 500000-565535".
func (o OwnedIDs) RangesText() string {
	var parts []string
	for _, r := range o.Ranges {
		parts = append(parts, IDRange{First: r.Start, Last: r.Start + r.Count - 1}.String())
	}
	return strings.Join(parts, ", ")
}

// Covers reports whether the outside ids of extent e may be mapped by the
// caller: e is its own id alone, or lies inside one of its ranges, as
// newuidmap(1) checks each extent.
func (o OwnedIDs) Covers(e Extent) bool {
	if e.Count == 1 && e.HostID == o.Self {
		return true
	}
	for _, r := range o.Ranges {
		if e.HostID >= r.Start && uint64(e.HostID)+uint64(e.Count) <= uint64(r.Start)+uint64(r.Count) {
			return true
		}
	}
	return false
}

// Check returns an error for the first extent of m that the caller may
// not map (see [OwnedIDs.Covers]): a [*MapError] matching [ErrUnmapped]
// that names the outside ids, File and the caller's ranges there, and
// that also matches Err when the caller has no ranges.
func (o OwnedIDs) Check(m Map) error {
	for i, e := range m.extents {
		if o.Covers(e) {
			continue
		}
		ids := IDRange{First: e.HostID, Last: e.HostID + e.Count - 1}
		me := &MapError{Extent: i, Text: e.String(), Err: ErrUnmapped}
		if o.Err != nil {
			me.Detail = fmt.Sprintf("host %ss %s are not the caller's own id %d, and it has no range in %s", o.Kind, ids, o.Self, o.File)
			return fmt.Errorf("%w: %w", me, o.Err)
		}
		me.Detail = fmt.Sprintf("host %ss %s are not the caller's own id %d nor inside one of its ranges in %s (%s)", o.Kind, ids, o.Self, o.File, o.RangesText())
		return me
	}
	return nil
}
