package restore

import (
	"context"
	"errors"
)

// Job is a restore command's work: one database, or several all or
// nothing, from preflight to results.
type Job struct {
	// Requests are the restores, one per database.
	Requests []Request
	// All restores every request all or nothing (see All); without it
	// there is exactly one request, restored by Full or, for a data-only
	// one, DataOnly.
	All bool
	// Warn, if set, is told each plan's warnings after its preflight.
	Warn func(warning string)
	// Progress and Phase, if set, are told each restore's progress (see
	// Request), with its plan.
	Progress func(p Plan, read, total int64)
	Phase    func(p Plan, ph Phase)
	// Confirm is asked once every preflight passed, before anything
	// changes; an error refuses the job, which changes nothing. Nil goes
	// ahead.
	Confirm func(plans []Plan) error
	// SafetyBackup, if set, backs up the data about to be replaced, after
	// the confirmation and before the first restore; an error stops the
	// job with nothing restored.
	SafetyBackup func(ctx context.Context, plans []Plan) error
}

// steps are the restore's steps; unit tests replace them.
type steps struct {
	preflight func(ctx context.Context, e Server, req Request) (Plan, error)
	full      func(ctx context.Context, e Server, p Plan) (Result, error)
	dataOnly  func(ctx context.Context, e Server, p Plan) (Result, error)
	all       func(ctx context.Context, e Server, plans []Plan) ([]Result, error)
}

// Run runs a job in its order: the preflight of every request (a refusal
// changes nothing), the confirmation, the safety backup, then the
// restores. The results are those of the restores that ran.
func Run(ctx context.Context, e Server, job Job) ([]Result, error) {
	return steps{preflight: Preflight, full: Full, dataOnly: DataOnly, all: All}.run(ctx, e, job)
}

func (s steps) run(ctx context.Context, e Server, job Job) ([]Result, error) {
	if len(job.Requests) == 0 || !job.All && len(job.Requests) > 1 {
		return nil, errors.New("restore: one request, or several all or nothing")
	}
	var plans []Plan
	for _, req := range job.Requests {
		plan, err := s.preflight(ctx, e, req)
		if err != nil {
			return nil, err
		}
		if job.Warn != nil {
			for _, w := range plan.Warnings {
				job.Warn(w)
			}
		}
		p := plan
		if job.Progress != nil {
			plan.Progress = func(read, total int64) { job.Progress(p, read, total) }
		}
		if job.Phase != nil {
			plan.Phase = func(ph Phase) { job.Phase(p, ph) }
		}
		plans = append(plans, plan)
	}
	if job.Confirm != nil {
		if err := job.Confirm(plans); err != nil {
			return nil, err
		}
	}
	if job.SafetyBackup != nil {
		if err := job.SafetyBackup(ctx, plans); err != nil {
			return nil, err
		}
	}
	switch {
	case job.All:
		return s.all(ctx, e, plans)
	case plans[0].DataOnly:
		r, err := s.dataOnly(ctx, e, plans[0])
		return []Result{r}, err
	default:
		r, err := s.full(ctx, e, plans[0])
		return []Result{r}, err
	}
}
