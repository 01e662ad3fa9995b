package actors

// SessionsForTest is testSessions, for the package's external tests
// (package actors_test): one harness for every single-node setup.
var SessionsForTest = testSessions
