package translate

import (
	"testing"
	"time"
)

func TestStreamBoundsSet(t *testing.T) {
	b := StreamBounds{}.withDefaults(DefaultSessionMaxDuration)
	if err := b.Set("cluster=5m, grafana=0"); err != nil {
		t.Fatal(err)
	}
	if b["cluster"] != 5*time.Minute || b["grafana"] != 0 || b["virtualcluster"] != time.Hour {
		t.Errorf("after cluster=5m,grafana=0: %v; want the others kept", b)
	}
	for _, bad := range []string{"-1m", "auth=1m", "cluster", "cluster=soon", "cluster=-1s"} {
		if err := (StreamBounds{}).Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
