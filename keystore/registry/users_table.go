package registry

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// userTable prints what people look for in `kubectl get users`.
type userTable struct{}

var userColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the user, which they log in with"},
	{Name: "Display Name", Type: "string", Description: "spec.displayName"},
	{Name: "Email", Type: "string", Description: "spec.email"},
	{Name: "Groups", Type: "string", Description: "spec.groups"},
	{Name: "Teams", Type: "string", Description: "status.teams"},
	{Name: "Disabled", Type: "boolean", Description: "spec.disabled"},
	{Name: "Age", Type: "date", Description: "Time since creation"},
}

func (userTable) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	t := &metav1.Table{ColumnDefinitions: userColumns}
	add := func(u *v1.User) {
		t.Rows = append(t.Rows, metav1.TableRow{
			Cells:  []any{u.Name, orNone(u.Spec.DisplayName), orNone(u.Spec.Email), joinOrNone(u.Spec.Groups), joinOrNone(u.Status.Teams), u.Spec.Disabled, age(u.CreationTimestamp)},
			Object: runtime.RawExtension{Object: u},
		})
	}
	switch o := obj.(type) {
	case *v1.User:
		add(o)
	case *v1.UserList:
		for i := range o.Items {
			add(&o.Items[i])
		}
	default:
		return nil, fmt.Errorf("cannot print %T as a table", obj)
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

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func joinOrNone(list []string) string { return orNone(strings.Join(list, ",")) }
