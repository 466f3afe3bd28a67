// Package codecheck holds tests of the code itself rather than of what it
// does: no function outside the test harnesses and the benches is more
// complex than MaxComplexity, and the import rules of docs/architecture.md
// hold (imports_test.go). It has no code of its own.
package codecheck

// MaxComplexity is the largest cyclomatic complexity a function of dtls
// may have: 1, plus one per if, for, range, case (but default), select
// case (but default), && and ||, counting function literals inside it.
const MaxComplexity = 25
