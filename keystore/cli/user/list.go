package user

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

func newListCommand(o *options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:       "list clusters|vclusters|accesskeys",
		Short:     "List the clusters or virtual clusters your key can reach, or the access keys you manage",
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"clusters", "vclusters", "accesskeys"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			switch args[0] {
			case "clusters", "cluster":
				return o.listClusters(cmd.Context(), output)
			case "vclusters", "vcluster", "virtualclusters":
				return o.listVClusters(cmd.Context(), output)
			case "accesskeys", "accesskey", "ownedaccesskeys":
				return o.listAccessKeys(cmd.Context(), output)
			}
			return fmt.Errorf("list %q: want clusters, vclusters or accesskeys", args[0])
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json or yaml; default: a table")
	return cmd
}

// checkOutput accepts the --output values every printing command shares.
func checkOutput(output string) error {
	if output != "" && output != "json" && output != "yaml" {
		return fmt.Errorf("--output %q: want json or yaml (or none, for the default)", output)
	}
	return nil
}

// get reads a resource of the management API with the saved key.
func (o *options) get(ctx context.Context, resource string, out any) error {
	return o.call(ctx, "GET", resource, nil, out)
}

// call sends a request to the management API with the saved key.
func (o *options) call(ctx context.Context, method, resource string, body, out any) error {
	l, err := o.login()
	if err != nil {
		return err
	}
	e, err := newEdge(l)
	if err != nil {
		return err
	}
	return e.do(ctx, method, managementPath+resource, body, out)
}

func (o *options) print(v any, output string) error {
	var data []byte
	var err error
	if output == "json" {
		data, err = json.MarshalIndent(v, "", "  ")
		data = append(data, '\n')
	} else {
		data, err = yaml.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = o.out.Write(data)
	return err
}

func (o *options) listClusters(ctx context.Context, output string) error {
	var list v1.ClusterList
	if err := o.get(ctx, "clusters", &list); err != nil {
		return err
	}
	if output != "" {
		return o.print(&list, output)
	}
	w := tabwriter.NewWriter(o.out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tPATH\tGRAFANA\tSPACES")
	for _, c := range list.Items {
		var spaces []string
		for _, s := range c.Status.Spaces {
			spaces = append(spaces, s.Name+"="+s.Project)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", c.Name, c.Status.Path, none(c.Status.GrafanaPath), none(strings.Join(spaces, ",")))
	}
	return w.Flush()
}

func (o *options) listVClusters(ctx context.Context, output string) error {
	var list v1.VirtualClusterInstanceList
	if err := o.get(ctx, "virtualclusterinstances", &list); err != nil {
		return err
	}
	if output != "" {
		return o.print(&list, output)
	}
	w := tabwriter.NewWriter(o.out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, "NAME\tCLUSTER\tNAMESPACE\tPROJECT\tPATH")
	for _, v := range list.Items {
		r := v.Spec.ClusterRef
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.VirtualCluster, r.Cluster, r.Namespace, none(v.Spec.Project), v.Status.Path)
	}
	return w.Flush()
}

func none(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
