package registry

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

// teamTable prints what people look for in `kubectl get teams`.
type teamTable struct{}

var teamColumns = []metav1.TableColumnDefinition{
	{Name: "Name", Type: "string", Format: "name", Description: "Name of the team"},
	{Name: "Display Name", Type: "string", Description: "spec.displayName"},
	{Name: "Users", Type: "string", Description: "spec.users: the members"},
	{Name: "Groups", Type: "string", Description: "spec.groups"},
	{Name: "Description", Type: "string", Priority: 1, Description: "spec.description"},
	{Name: "Age", Type: "date", Description: "Time since creation"},
}

func (teamTable) ConvertToTable(_ context.Context, obj runtime.Object, _ runtime.Object) (*metav1.Table, error) {
	return table(obj, teamColumns, func(tm *v1.Team) []any {
		return []any{tm.Name, orNone(tm.Spec.DisplayName), joinOrNone(tm.Spec.Users), joinOrNone(tm.Spec.Groups), tm.Spec.Description, age(tm.CreationTimestamp)}
	})
}
