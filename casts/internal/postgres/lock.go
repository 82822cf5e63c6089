package postgres

// migrationLock is the advisory lock key that serialises migrations when several instances start
// at once. It is the one line of this package that differs between the services on purpose (the
// rest is a listed twin of the movie service's), so it lives in a file of its own.
const migrationLock = 0x63617374 // "cast"
