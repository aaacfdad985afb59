package migrations

import "context"

// Revert reverts the newest applied migration (to nil: Down) or every
// applied migration newer than *to (DownTo), as aidb migrate down does
// without and with --to.
func (r *Runner) Revert(ctx context.Context, to *int64) ([]Applied, error) {
	if to == nil {
		return r.Down(ctx)
	}
	return r.DownTo(ctx, *to)
}

// Reverts says whether Revert from the applied version v reverts a
// migration, and so whether the data is worth a safety backup first:
// nothing is applied at version 0, and DownTo(*to) keeps what is at or
// below *to. A negative *to counts (DownTo refuses it, after the backup).
func Reverts(v int64, to *int64) bool {
	return v > 0 && (to == nil || v > *to)
}
