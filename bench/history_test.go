package bench

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// ev is a history event of type typ at t.
func ev(typ enumspb.EventType, t time.Time) *historypb.HistoryEvent {
	return &historypb.HistoryEvent{EventType: typ, EventTime: timestamppb.New(t)}
}

// A tenant-period is the same window whether the tenant continues as new at
// each boundary or bills the next period in the same run, and a timer that
// fires before the first boundary (the set-up's claim debounce) is not it.
func TestPeriodEventsAcrossAndWithinRuns(t *testing.T) {
	b1 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	b2 := b1.Add(time.Minute)
	const (
		started = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
		fired   = enumspb.EVENT_TYPE_TIMER_FIRED
		task    = enumspb.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
		marker  = enumspb.EVENT_TYPE_MARKER_RECORDED
		timer   = enumspb.EVENT_TYPE_TIMER_STARTED
		cont    = enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
	)
	setup := []*historypb.HistoryEvent{ev(started, b1.Add(-time.Minute)), ev(task, b1.Add(-time.Minute)),
		ev(fired, b1.Add(-30*time.Second)), ev(task, b1.Add(-30*time.Second)), ev(timer, b1.Add(-30*time.Second))}

	// One run per period.
	run0 := append(append([]*historypb.HistoryEvent{}, setup...), ev(fired, b1), ev(task, b1), ev(marker, b1), ev(cont, b1))
	run1 := []*historypb.HistoryEvent{ev(started, b1), ev(task, b1), ev(timer, b1), ev(fired, b2), ev(task, b2), ev(marker, b2), ev(cont, b2)}
	period, before, run, ok := PeriodEvents([][]*historypb.HistoryEvent{run0, run1, {ev(started, b2)}}, b1, b2)
	require.True(t, ok)
	require.Len(t, period, 7, "fired, task, marker, continued | started, task, timer")
	require.Equal(t, len(setup), before)
	require.Equal(t, run1, run)

	// One run for both periods.
	one := append(append([]*historypb.HistoryEvent{}, setup...), ev(fired, b1), ev(task, b1), ev(marker, b1), ev(timer, b1),
		ev(fired, b2), ev(task, b2))
	period, before, run, ok = PeriodEvents([][]*historypb.HistoryEvent{one}, b1, b2)
	require.True(t, ok)
	require.Len(t, period, 4, "fired, task, marker, timer")
	require.Equal(t, len(setup), before)
	require.Equal(t, one, run)

	// The second boundary has not fired yet.
	_, _, _, ok = PeriodEvents([][]*historypb.HistoryEvent{one[:len(one)-2]}, b1, b2)
	require.False(t, ok)
}
