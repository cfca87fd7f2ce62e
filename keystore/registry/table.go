package registry

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// tableConvertor prints what people look for in `kubectl get ownedaccesskeys`.
type tableConvertor struct{}

var columns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the access key"},
	{Name: "Owner", Type: "string", Description: "user:<user> or team:<team>"},
	{Name: "Type", Type: "string", Description: "spec.type"},
	{Name: "Expires", Type: "string", Description: "When the key expires: never, a time, or after inactivity"},
	{Name: "Last Activity", Type: "string", Description: "How long ago the key was last used"},
	{Name: "Disabled", Type: "boolean", Priority: 1, Description: "spec.disabled"},
	{Name: "Display Name", Type: "string", Priority: 1, Description: "spec.displayName"},
	{Name: "Age", Type: "date", Description: "Time since creation"},
}

// table prints obj, one T or a list of them, as rows of cells, with the resourceVersion (and
// continue token) of obj: what every kind's ConvertToTable does, with its own columns.
func table[T runtime.Object](obj runtime.Object, columns []metav1.TableColumnDefinition, cells func(T) []any) (*metav1.Table, error) {
	items := []runtime.Object{obj}
	if meta.IsListType(obj) {
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, err
		}
	}
	t := &metav1.Table{ColumnDefinitions: columns}
	for _, item := range items {
		o, ok := item.(T)
		if !ok {
			return nil, fmt.Errorf("cannot print %T as a table", item)
		}
		t.Rows = append(t.Rows, metav1.TableRow{Cells: cells(o), Object: runtime.RawExtension{Object: o}})
	}
	setTableVersion(t, obj)
	return t, nil
}

// setTableVersion gives t the resourceVersion (and continue token) of obj, a list or object.
func setTableVersion(t *metav1.Table, obj runtime.Object) {
	if l, err := meta.ListAccessor(obj); err == nil {
		t.ResourceVersion = l.GetResourceVersion()
		t.Continue = l.GetContinue()
	} else if m, err := meta.Accessor(obj); err == nil {
		t.ResourceVersion = m.GetResourceVersion()
	}
}

// now is the clock of the table; tests replace it.
var now = time.Now

func (tableConvertor) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return table(obj, columns, func(k *v1.OwnedAccessKey) []any {
		return []any{k.Name, owner(k), string(k.Spec.Type), expires(k), lastActivity(k), k.Spec.Disabled, k.Spec.DisplayName, age(k.CreationTimestamp)}
	})
}

func owner(k *v1.OwnedAccessKey) string {
	if k.Spec.User != "" {
		return "user:" + k.Spec.User
	}
	if k.Spec.Team != "" {
		return "team:" + k.Spec.Team
	}
	return "<none>"
}

func expires(k *v1.OwnedAccessKey) string {
	if k.Spec.TTL <= 0 {
		return "never"
	}
	ttl := time.Duration(k.Spec.TTL) * time.Second
	if k.Spec.TTL > int64((1<<63-1)/time.Second) {
		return "never"
	}
	from := k.CreationTimestamp.Time
	if k.Spec.TTLAfterLastActivity {
		if k.Status.LastActivity != nil && k.Status.LastActivity.After(from) {
			from = k.Status.LastActivity.Time
		}
		if at := from.Add(ttl); at.After(now()) {
			return fmt.Sprintf("%s idle (in %s)", strings.TrimSuffix(duration.HumanDuration(ttl), "0s"), duration.HumanDuration(at.Sub(now())))
		}
		return "expired"
	}
	at := from.Add(ttl)
	if !at.After(now()) {
		return "expired"
	}
	return "in " + duration.HumanDuration(at.Sub(now()))
}

func lastActivity(k *v1.OwnedAccessKey) string {
	if k.Status.LastActivity == nil {
		return "<never>"
	}
	return duration.HumanDuration(now().Sub(k.Status.LastActivity.Time)) + " ago"
}

func age(t metav1.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now().Sub(t.Time))
}
