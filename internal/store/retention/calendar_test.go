package retention

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// resticTimes are the snapshot times of restic's TestApplyPolicy
// (internal/restic/snapshot_policy_test.go), in its order: not sorted, with
// equal times and two snapshots a tenth of a second apart.
var resticTimes = []string{
	"2014-09-01 10:20:30", "2014-09-02 10:20:30", "2014-09-05 10:20:30", "2014-09-06 10:20:30",
	"2014-09-08 10:20:30", "2014-09-09 10:20:30", "2014-09-10 10:20:30", "2014-09-11 10:20:30",
	"2014-09-20 10:20:30", "2014-09-22 10:20:30", "2014-08-08 10:20:30", "2014-08-10 10:20:30",
	"2014-08-12 10:20:30", "2014-08-13 10:20:30", "2014-08-13 10:20:30.1", "2014-08-15 10:20:30",
	"2014-08-18 10:20:30", "2014-08-20 10:20:30", "2014-08-21 10:20:30", "2014-08-22 10:20:30",
	"2014-10-01 10:20:30", "2014-10-02 10:20:30", "2014-10-05 10:20:30", "2014-10-06 10:20:30",
	"2014-10-08 10:20:30", "2014-10-09 10:20:30", "2014-10-10 10:20:30", "2014-10-11 10:20:30",
	"2014-10-20 10:20:30", "2014-10-22 10:20:30", "2014-11-08 10:20:30", "2014-11-10 10:20:30",
	"2014-11-12 10:20:30", "2014-11-13 10:20:30", "2014-11-13 10:20:30.1", "2014-11-15 10:20:30",
	"2014-11-18 10:20:30", "2014-11-20 10:20:30", "2014-11-21 10:20:30", "2014-11-22 10:20:30",
	"2015-09-01 10:20:30", "2015-09-02 10:20:30", "2015-09-05 10:20:30", "2015-09-06 10:20:30",
	"2015-09-08 10:20:30", "2015-09-09 10:20:30", "2015-09-10 10:20:30", "2015-09-11 10:20:30",
	"2015-09-20 10:20:30", "2015-09-22 10:20:30", "2015-08-08 10:20:30", "2015-08-10 10:20:30",
	"2015-08-12 10:20:30", "2015-08-13 10:20:30", "2015-08-13 10:20:30.1", "2015-08-15 10:20:30",
	"2015-08-18 10:20:30", "2015-08-20 10:20:30", "2015-08-21 10:20:30", "2015-08-22 10:20:30",
	"2015-10-01 10:20:30", "2015-10-02 10:20:30", "2015-10-05 10:20:30", "2015-10-06 10:20:30",
	"2015-10-08 10:20:30", "2015-10-09 10:20:30", "2015-10-10 10:20:30", "2015-10-11 10:20:30",
	"2015-10-20 10:20:30", "2015-10-22 10:20:30", "2015-10-22 10:20:30", "2015-10-22 10:20:30",
	"2015-10-22 10:20:30", "2015-10-22 10:20:30", "2015-11-08 10:20:30", "2015-11-10 10:20:30",
	"2015-11-12 10:20:30", "2015-11-13 10:20:30", "2015-11-13 10:20:30.1", "2015-11-15 10:20:30",
	"2015-11-18 10:20:30", "2015-11-20 10:20:30", "2015-11-21 10:20:30", "2015-11-22 10:20:30",
	"2016-01-01 01:02:03", "2016-01-01 01:03:03", "2016-01-01 07:08:03", "2016-01-03 07:02:03",
	"2016-01-04 10:23:03", "2016-01-04 11:23:03", "2016-01-04 12:23:03", "2016-01-04 12:24:03",
	"2016-01-04 12:28:03", "2016-01-04 12:30:03", "2016-01-04 16:23:03", "2016-01-05 09:02:03",
	"2016-01-06 08:02:03", "2016-01-07 10:02:03", "2016-01-08 20:02:03", "2016-01-09 21:02:03",
	"2016-01-12 21:02:03", "2016-01-12 21:08:03", "2016-01-18 12:02:03",
}

func resticBackups(t *testing.T) []Backup {
	t.Helper()
	out := make([]Backup, len(resticTimes))
	for i, s := range resticTimes {
		at, err := time.Parse("2006-01-02 15:04:05", s)
		require.NoError(t, err)
		out[i] = full(fmt.Sprintf("b%03d", i), at)
	}
	return out
}

// TestApplyCalendarKeepsResticsSets: restic's table of expected keep sets
// (its golden files testdata/policy_keep_snapshots_N, N named per case),
// and sets worked out by hand for rules its table has no golden file for
// here. ISO weeks: 2016-01-03, a Sunday, is in 2015-W53 with 2016-01-01.
func TestApplyCalendarKeepsResticsSets(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		policy Policy
		keep   []string
		// reasons: a kept time → the rules its reason names
		reasons map[string][]string
	}{
		{
			name:   "restic 10: last 2, daily 10",
			policy: Policy{KeepLast: 2, KeepDaily: 10},
			keep: []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03",
				"2016-01-07 10:02:03", "2016-01-06 08:02:03", "2016-01-05 09:02:03", "2016-01-04 16:23:03",
				"2016-01-03 07:02:03", "2016-01-01 07:08:03"},
			reasons: map[string][]string{"2016-01-18 12:02:03": {"keep-last 2", "keep-daily 10: the newest of day 2016-01-18"}, "2016-01-01 07:08:03": {"keep-daily 10"}},
		},
		{
			name:   "restic 12: weekly 4",
			policy: Policy{KeepWeekly: 4},
			keep:   []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-03 07:02:03"},
			reasons: map[string][]string{
				"2016-01-09 21:02:03": {"keep-weekly 4: the newest of week 2016-W01"},
				"2016-01-03 07:02:03": {"keep-weekly 4: the newest of week 2015-W53"},
			},
		},
		{
			name:   "restic 13: daily 3, weekly 4",
			policy: Policy{KeepDaily: 3, KeepWeekly: 4},
			keep:   []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-03 07:02:03"},
		},
		{
			name:   "restic 16: yearly 10",
			policy: Policy{KeepYearly: 10},
			keep:   []string{"2016-01-18 12:02:03", "2015-11-22 10:20:30", "2014-11-22 10:20:30"},
		},
		{
			name:   "restic 17: daily 7, weekly 2, monthly 3, yearly 10",
			policy: Policy{KeepDaily: 7, KeepWeekly: 2, KeepMonthly: 3, KeepYearly: 10},
			keep: []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03",
				"2016-01-07 10:02:03", "2016-01-06 08:02:03", "2016-01-05 09:02:03", "2015-11-22 10:20:30",
				"2015-10-22 10:20:30", "2014-11-22 10:20:30"},
			reasons: map[string][]string{
				"2016-01-18 12:02:03": {"keep-daily 7", "keep-weekly 2", "keep-monthly 3", "keep-yearly 10"},
				"2015-11-22 10:20:30": {"keep-monthly 3: the newest of month 2015-11", "keep-yearly 10: the newest of year 2015"},
			},
		},
		{
			name:   "hourly 5: the newest of each of the newest 5 hours with a backup",
			policy: Policy{KeepHourly: 5},
			keep:   []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03", "2016-01-07 10:02:03"},
		},
		{
			name:   "hourly 12 reaches into 2016-01-04, one per hour",
			policy: Policy{KeepHourly: 12},
			keep: []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03",
				"2016-01-07 10:02:03", "2016-01-06 08:02:03", "2016-01-05 09:02:03", "2016-01-04 16:23:03",
				"2016-01-04 12:30:03", "2016-01-04 11:23:03", "2016-01-04 10:23:03", "2016-01-03 07:02:03"},
		},
		{
			name:   "monthly 6",
			policy: Policy{KeepMonthly: 6},
			keep: []string{"2016-01-18 12:02:03", "2015-11-22 10:20:30", "2015-10-22 10:20:30", "2015-09-22 10:20:30",
				"2015-08-22 10:20:30", "2014-11-22 10:20:30"},
		},
		{
			name:   "last 3 alone",
			policy: Policy{KeepLast: 3},
			keep:   []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-12 21:02:03"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.NoError(t, tc.policy.Validate())
			backups := resticBackups(t)
			plan := Apply(tc.policy, now, backups, nil)
			var kept []string
			reasons := map[string]string{}
			for _, d := range plan.Decisions {
				at := d.Created.Format("2006-01-02 15:04:05")
				if d.Keep {
					kept = append(kept, at)
					reasons[at] = d.Reason
				} else {
					assert.Contains(t, d.Reason, "no rule keeps it ("+tc.policy.Describe()+")", at)
				}
			}
			slices.Sort(kept)
			want := slices.Clone(tc.keep)
			slices.Sort(want)
			assert.Equal(t, want, kept)
			for at, rules := range tc.reasons {
				for _, r := range rules {
					assert.Contains(t, reasons[at], r, at)
				}
			}
		})
	}
}

// A backup any rule keeps stays; the reason names each rule that keeps it,
// and the rules count per database and kind.
func TestApplyCalendarPerDatabaseAndKind(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	backups := []Backup{
		full("r1", ago(0)), full("r2", ago(day)), full("r3", ago(2*day)),
		with(full("m1", ago(3*day)), memorydb), with(full("m2", ago(4*day)), memorydb),
	}
	plan := Apply(Policy{KeepDaily: 2}, now, backups, nil)
	kept := map[string]bool{}
	for _, d := range plan.Decisions {
		kept[d.File] = d.Keep
	}
	assert.Equal(t, map[string]bool{"r1": true, "r2": true, "r3": false, "m1": true, "m2": true}, kept,
		"two days of each database: memorydb's older days are its newest two")
	assert.True(t, strings.HasPrefix(plan.Decisions[0].Reason, "#1 of 3 intact full backups of rulesdb, newest first; kept by keep-daily 2"), plan.Decisions[0].Reason)
}

func TestPolicyValidateCalendar(t *testing.T) {
	t.Parallel()
	assert.NoError(t, Policy{KeepDaily: 7}.Validate(), "a calendar rule alone is enough")
	err := Policy{KeepLast: 1, KeepWeekly: -1}.Validate()
	var pe *PolicyError
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "keep-weekly", pe.Rule)
	assert.ErrorContains(t, err, "keep-weekly -1 is negative")
	require.ErrorAs(t, Policy{}.Validate(), &pe)
	assert.Equal(t, "keep-last", pe.Rule)
	require.ErrorAs(t, Policy{KeepMonthly: 1, SafetyKeepWithin: -1}.Validate(), &pe)
	assert.Equal(t, "keep-safety-within", pe.Rule)
	assert.Equal(t, "keep-last 2, keep-daily 7, keep-yearly 1", Policy{KeepLast: 2, KeepDaily: 7, KeepYearly: 1}.Describe())
}
