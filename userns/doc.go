// Package userns handles Linux user namespace id maps and live user
// namespaces, as needed to give file capabilities (security.capability
// revision 3) the right rootid.
//
// # Id maps
//
// A [Map] is the content of /proc/PID/uid_map or gid_map: [Extent]s of
// NsID (column 1), HostID (column 2) and Count (column 3). Maps are read
// from the flag form "0:100000:65536,..." of podman's --uidmap
// ([ParseMap]), from /proc text ([ParseProcMap], the kernel's write
// grammar), from OCI config.json linux.uidMappings ([ParseOCIConfig]) and
// built for rootless helpers from /etc/subuid ([ParseSubID],
// [RootlessMap]). Every map is validated with the rules of the kernel's
// map_write (kernel/user_namespace.c): 1 to 340 extents, count > 0, no
// range past 4294967294, no first id 4294967295, no overlap inside or
// outside. Errors are [*MapError]s naming the extent and wrapping a
// sentinel (ErrSyntax, ErrOverlap, ErrTooMany, ...). [Map.ToHost] and
// [Map.ToNs] translate ids (an uncovered id gives an [*UnmappedError]
// matching [ErrUnmapped]); [Compose] chains the map of a nested namespace
// with its parent's. This part is pure: it does not touch the system and
// builds on any GOOS.
//
// # Live namespaces (Linux)
//
// [RootOf] gives the root uid of a process's namespace as a uid of the
// caller's namespace, the rootid a capability must carry to be honoured
// there; [ReadMaps] and [Inspect] read maps and nsfs data (ioctl_ns(2):
// NS_GET_PARENT, NS_GET_OWNER_UID, NS_GET_ID); [Tree] lists every visible
// user namespace as a tree, including namespaces whose processes all
// exited but which a child keeps alive. The kernel shows column 2 of a
// map relative to the reader's namespace (see kernel-semantics §6), so
// results are relative to the caller's namespace: kernel uids when the
// caller runs in the initial namespace.
//
// # Helper namespaces (Linux)
//
// An unprivileged user owning subordinate ids can act as root of a fresh
// user namespace mapped onto its ids. [StartHelper] re-executes the
// running binary (/proc/self/exe) in a new user namespace, has its maps
// written by newuidmap(1)/newgidmap(1) (or, for a caller without
// subordinate ids, the single-id maps 0:<own id>:1 written by the parent
// itself, as unshare -r does), and runs operations that packages
// registered with [RegisterHelperOp] in it, over a JSON pipe protocol.
// The caller may hand it descriptors ([HelperOptions.ExtraFiles], got
// back inside with [HelperFile]), and an operation may stream typed
// events back while it runs ([HelperEmit], [Helper.CallEvents]). The maps
// of an unprivileged caller are checked first against the ids it owns
// ([CallerUIDs], [CallerGIDs], [OwnedIDs.Check]).
// The binary must call [HelperMain] at the start of main (and test
// binaries in TestMain): it serves the request when the process is a
// helper (environment variable [HelperEnv] set) and returns otherwise.
package userns
