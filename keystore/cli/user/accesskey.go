package user

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

type createKeyFlags struct {
	scopeFile, output string
	ttl               time.Duration
}

// newCreateCommand is `create accesskey`: an OwnedAccessKey made through the management API
// with the logged-in key, so every server rule (ownership, quotas, no key widening itself, the
// ttl cap) applies exactly as to kubectl create.
func newCreateCommand(o *options) *cobra.Command {
	var f createKeyFlags
	cmd := &cobra.Command{Use: "create", Short: "Create an object through the management API"}
	key := &cobra.Command{
		Use:   "accesskey NAME",
		Short: "Create an access key of yours; its plain key is printed once, on standard output",
		Example: `  keygate create accesskey ci-deploy --ttl 720h --scope-file scope.yaml > ci.key
  # scope.yaml, an AccessKeyScope (management.loft.sh/v1):
  #   clusters: [{cluster: demo}]`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(f.output); err != nil {
				return err
			}
			return o.createAccessKey(cmd.Context(), args[0], f)
		},
	}
	key.Flags().StringVar(&f.scopeFile, "scope-file", "", "YAML or JSON file of the key's scope (an AccessKeyScope); default: no scope, everything you may reach")
	key.Flags().DurationVar(&f.ttl, "ttl", 0, "lifetime, e.g. 720h; default: never expires (the server may cap it)")
	key.Flags().StringVarP(&f.output, "output", "o", "", "json or yaml: print the created object, its spec.key included; default: the plain key alone")
	cmd.AddCommand(key)
	return cmd
}

func newDeleteCommand(o *options) *cobra.Command {
	cmd := &cobra.Command{Use: "delete", Short: "Delete an object through the management API"}
	cmd.AddCommand(&cobra.Command{
		Use:   "accesskey NAME",
		Short: "Delete an access key (it stops working at the edge within the revocation bound)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.deleteAccessKey(cmd.Context(), args[0])
		},
	})
	return cmd
}

// newAccessKey is the object create sends: the server fills in the owner (the caller) and
// generates the key.
func newAccessKey(name string, f createKeyFlags) (*v1.OwnedAccessKey, error) {
	k := &v1.OwnedAccessKey{TypeMeta: typeMeta("OwnedAccessKey"), ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.OwnedAccessKeySpec{Type: v1.AccessKeyTypeUser}}
	if f.ttl < 0 {
		return nil, fmt.Errorf("--ttl %s: want a positive duration", f.ttl)
	}
	// Whole seconds, rounded up: the key never lives shorter than asked.
	k.Spec.TTL = int64((f.ttl + time.Second - 1) / time.Second)
	if f.scopeFile != "" {
		data, err := os.ReadFile(f.scopeFile)
		if err != nil {
			return nil, fmt.Errorf("--scope-file: %w", err)
		}
		var scope v1.AccessKeyScope
		// Strict: a misspelt field would otherwise vanish and leave the key wider than meant.
		if err := yaml.UnmarshalStrict(data, &scope); err != nil {
			return nil, fmt.Errorf("--scope-file %s: not an AccessKeyScope: %w", f.scopeFile, err)
		}
		k.Spec.Scope = &scope
	}
	return k, nil
}

func (o *options) createAccessKey(ctx context.Context, name string, f createKeyFlags) error {
	k, err := newAccessKey(name, f)
	if err != nil {
		return err
	}
	var created v1.OwnedAccessKey
	if err := o.call(ctx, "POST", "ownedaccesskeys", k, &created); err != nil {
		return fmt.Errorf("create accesskey %q: %w", name, err)
	}
	if created.Spec.Key == "" {
		return fmt.Errorf("create accesskey %q: the server answered without the key", name)
	}
	if f.output != "" {
		err = o.print(&created, f.output)
	} else {
		_, err = fmt.Fprintln(o.out, created.Spec.Key)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(o.err, "Created access key %q of %s (%s). Its key is shown this once: keep it in a secret store; "+
		"use it as a bearer token, or with keygate login --access-key-stdin.\n", created.Name, owner(&created), describeKey(&created))
	return nil
}

func owner(k *v1.OwnedAccessKey) string {
	if k.Spec.User != "" {
		return "user " + k.Spec.User
	}
	return "team " + k.Spec.Team
}

func describeKey(k *v1.OwnedAccessKey) string {
	var parts []string
	if k.Spec.TTL > 0 {
		parts = append(parts, "expires "+k.CreationTimestamp.Add(time.Duration(k.Spec.TTL)*time.Second).UTC().Format(time.RFC3339))
	} else {
		parts = append(parts, "never expires")
	}
	if k.Spec.Scope == nil {
		parts = append(parts, "no scope: it reaches all you may reach")
	} else {
		parts = append(parts, "scoped")
	}
	return strings.Join(parts, ", ")
}

func (o *options) deleteAccessKey(ctx context.Context, name string) error {
	if err := o.call(ctx, "DELETE", "ownedaccesskeys/"+name, nil, nil); err != nil {
		var st *statusError
		if errors.As(err, &st) && st.code == 404 {
			return fmt.Errorf("delete accesskey %q: not found among the keys you manage (see keygate list accesskeys)", name)
		}
		return fmt.Errorf("delete accesskey %q: %w", name, err)
	}
	fmt.Fprintf(o.err, "Deleted access key %q.\n", name)
	if l, err := o.login(); err == nil && l.AccessKeyName == name {
		fmt.Fprintln(o.err, "That was the key this login uses: run `keygate login` again.")
	}
	return nil
}

func (o *options) listAccessKeys(ctx context.Context, output string) error {
	var list v1.OwnedAccessKeyList
	if err := o.get(ctx, "ownedaccesskeys", &list); err != nil {
		return err
	}
	if output != "" {
		return o.print(&list, output)
	}
	w := tabwriter.NewWriter(o.out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tOWNER\tTYPE\tEXPIRES\tSCOPED\tDISABLED")
	for _, k := range list.Items {
		expires := "<never>"
		if k.Spec.TTL > 0 {
			expires = k.CreationTimestamp.Add(time.Duration(k.Spec.TTL) * time.Second).UTC().Format(time.RFC3339)
			if k.Spec.TTLAfterLastActivity {
				expires = fmt.Sprintf("%s after last use", time.Duration(k.Spec.TTL)*time.Second)
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\t%t\n", k.Name, owner(&k), none(string(k.Spec.Type)), expires, k.Spec.Scope != nil, k.Spec.Disabled)
	}
	return w.Flush()
}
