package registry

import (
	"context"
	"strings"

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
	return table(obj, userColumns, func(u *v1.User) []any {
		return []any{u.Name, orNone(u.Spec.DisplayName), orNone(u.Spec.Email), joinOrNone(u.Spec.Groups), joinOrNone(u.Status.Teams), u.Spec.Disabled, age(u.CreationTimestamp)}
	})
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

func joinOrNone(list []string) string { return orNone(strings.Join(list, ",")) }
