package discover

import "testing"

func TestNextMode(t *testing.T) {
	tests := map[string]struct {
		o    observation
		want Mode
	}{
		"polled, no poll answered yet":                           {observation{mode: Polled, poll: pollNone}, Polled},
		"polled, the poll found no vcluster Service":             {observation{mode: Polled, poll: pollEmpty}, Polled},
		"polled, the poll found a vcluster Service":              {observation{mode: Polled, poll: pollFound}, Watched},
		"polled, a Service cache says nothing":                   {observation{mode: Polled, poll: pollEmpty, synced: true, vclusters: 3}, Polled},
		"watched, cache filling":                                 {observation{mode: Watched, poll: pollFound}, Watched},
		"watched, cache filling (or cluster away) says none yet": {observation{mode: Watched, synced: false, vclusters: 0}, Watched},
		"watched, synced with vcluster Services":                 {observation{mode: Watched, synced: true, vclusters: 2}, Watched},
		"watched, synced, the last vcluster Service went":        {observation{mode: Watched, synced: true, vclusters: 0}, Polled},
		"watched, a stale poll result says nothing":              {observation{mode: Watched, poll: pollEmpty, synced: true, vclusters: 1}, Watched},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			if got := nextMode(tc.o); got != tc.want {
				t.Errorf("nextMode(%+v) = %s, want %s", tc.o, got, tc.want)
			}
		})
	}
}
