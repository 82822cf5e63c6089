package postgres

// migrationLock is the advisory lock key that serialises migrations when several instances start
// at once. It is the one line of this package that differs between the services on purpose (the
// rest is a listed twin of the cast service's), so it lives in a file of its own.
const migrationLock = 0x6d6f7669 // "movi": not casts' "cast" key, so the two stay apart even if ever run on one database
