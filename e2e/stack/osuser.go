package stack

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// serverUser is the OS user that runs initdb and postgres. PostgreSQL refuses
// to run as root, so when we are root it is the "postgres" user.
type serverUser struct {
	name     string
	uid, gid uint32
	switchTo bool // true when children must change to this user
}

func lookupServerUser() (serverUser, error) {
	if os.Geteuid() != 0 {
		return serverUser{name: "the current user", uid: uint32(os.Getuid()), gid: uint32(os.Getgid())}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return serverUser{}, fmt.Errorf("stack: running as root, and PostgreSQL refuses to run as root, but there is no \"postgres\" user to run it as "+
			"(create one: useradd --system --user-group postgres; or run as a normal user): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return serverUser{}, fmt.Errorf("stack: uid of user postgres: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return serverUser{}, fmt.Errorf("stack: gid of user postgres: %w", err)
	}
	return serverUser{name: "postgres", uid: uint32(uid), gid: uint32(gid), switchTo: true}, nil
}

// sysProcAttr is childAttr plus, when needed, the switch to the server user.
// No supplementary groups: the server needs none, and reachable() assumes so.
func (u serverUser) sysProcAttr(deathSignal syscall.Signal) *syscall.SysProcAttr {
	attr := childAttr(deathSignal)
	if u.switchTo {
		attr.Credential = &syscall.Credential{Uid: u.uid, Gid: u.gid}
	}
	return attr
}

// chownAll gives path and everything under it to the server user, when the
// owner of path is not already that user (a cluster first made by someone
// else, or a directory we just made as root).
func (u serverUser) chownAll(path string) error {
	if !u.switchTo {
		return nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Uid == u.uid && st.Gid == u.gid {
		return nil
	}
	err = filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(u.uid), int(u.gid))
	})
	if err != nil {
		return fmt.Errorf("stack: give %s to user %s: %w", path, u.name, err)
	}
	return nil
}

// reachable fails when the server user cannot traverse every directory on
// the way to dir: PostgreSQL then fails with a bare "permission denied".
func (u serverUser) reachable(dir string) error {
	if !u.switchTo {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("stack: %w", err)
	}
	for d := abs; ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("stack: %w", err)
		}
		if !u.canTraverse(info) {
			return fmt.Errorf("stack: PostgreSQL runs as user %s, which cannot reach %s because %s is not searchable by it (chmod o+x %s, or use a directory elsewhere)",
				u.name, abs, d, d)
		}
		if filepath.Dir(d) == d {
			return nil
		}
	}
}

func (u serverUser) canTraverse(info fs.FileInfo) bool {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return true // not a Unix file system: nothing we can check
	}
	mode := info.Mode().Perm()
	switch {
	case st.Uid == u.uid:
		return mode&0o100 != 0
	case st.Gid == u.gid:
		return mode&0o010 != 0
	default:
		return mode&0o001 != 0
	}
}

// tempParent is where a throwaway cluster's directory goes: the usual temp
// dir, unless the server user cannot reach it (TMPDIR under /root, say).
func (u serverUser) tempParent() string {
	if dir := os.TempDir(); u.reachable(dir) == nil {
		return dir
	}
	return "/tmp"
}
