package authority

import "github.com/dtls-tool/dtls/internal/cahost/engine"

// Every change of the state directory is one journaled change of the
// engine (engine.Journal, STATE_DIR/journal): a run killed at any instant
// leaves a state that the next Open finishes, and a step that fails is
// undone at once.

type txn = engine.Txn

var newTxn = engine.NewTxn

// ChangeError is a step that failed and was undone: nothing was changed.
type ChangeError = engine.ChangeError

// Recovery says what the next run did with a change a killed run left.
type Recovery = engine.Recovery

// journal is the state directory's journal.
func (a *Authority) journal() *engine.Journal {
	if a.jr == nil {
		a.jr = engine.StateJournal(a.Dir, a.Store)
	}
	return a.jr
}

// commit runs t through the journal.
func (a *Authority) commit(t *txn) error { return a.journal().Commit(t) }
