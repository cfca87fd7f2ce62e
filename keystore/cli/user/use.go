package user

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
)

type useFlags struct {
	cluster, namespace, project, output string
	print, switchContext                bool
}

func newUseCommand(o *options) *cobra.Command {
	var f useFlags
	cmd := &cobra.Command{Use: "use", Short: "Write a kubeconfig context for a cluster or virtual cluster"}
	cluster := &cobra.Command{
		Use: "cluster NAME", Short: "Write context loft_NAME for connected cluster NAME and switch to it",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.useCluster(cmd.Context(), args[0], f) },
	}
	vcluster := &cobra.Command{
		Use: "vcluster NAME --cluster C --namespace NS", Short: "Write context loft-vcluster_NAME_NS_C for a virtual cluster and switch to it",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.useVCluster(cmd.Context(), args[0], f) },
	}
	vcluster.Flags().StringVar(&f.cluster, "cluster", "", "connected cluster the virtual cluster runs in")
	vcluster.Flags().StringVar(&f.namespace, "namespace", "", "namespace it runs in")
	vcluster.Flags().StringVar(&f.project, "project", "", "its project (optional: narrows the choice)")
	for _, c := range []*cobra.Command{cluster, vcluster} {
		c.Flags().BoolVar(&f.print, "print", false, "print the kubeconfig instead of merging it")
		c.Flags().StringVarP(&f.output, "output", "o", "", "with --print: json or yaml (default yaml)")
		c.Flags().BoolVar(&f.switchContext, "switch-context", true, "make it the current context")
		cmd.AddCommand(c)
	}
	return cmd
}

func (o *options) useCluster(ctx context.Context, name string, f useFlags) error {
	if err := checkUseOutput(f); err != nil {
		return err
	}
	var list v1.ClusterList
	if err := o.get(ctx, "clusters", &list); err != nil {
		return err
	}
	var names []string
	for _, c := range list.Items {
		if c.Name == name {
			return o.write(Context{Name: "loft_" + name}, c.Status.Path, f)
		}
		names = append(names, c.Name)
	}
	return fmt.Errorf("cluster %q is not one your key can reach; it can reach: %s", name, orNothing(names))
}

func (o *options) useVCluster(ctx context.Context, name string, f useFlags) error {
	if err := checkUseOutput(f); err != nil {
		return err
	}
	var list v1.VirtualClusterInstanceList
	if err := o.get(ctx, "virtualclusterinstances", &list); err != nil {
		return err
	}
	var names []string
	var found []v1.VirtualClusterInstance
	for _, v := range list.Items {
		r := v.Spec.ClusterRef
		names = append(names, fmt.Sprintf("%s (--cluster %s --namespace %s)", r.VirtualCluster, r.Cluster, r.Namespace))
		if r.VirtualCluster == name && (f.cluster == "" || f.cluster == r.Cluster) && (f.namespace == "" || f.namespace == r.Namespace) &&
			(f.project == "" || f.project == v.Spec.Project) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		return fmt.Errorf("virtual cluster %q is not one your key can reach; it can reach: %s", name, orNothing(names))
	case 1:
		r := found[0].Spec.ClusterRef
		return o.write(Context{Name: "loft-vcluster_" + r.VirtualCluster + "_" + r.Namespace + "_" + r.Cluster}, found[0].Status.Path, f)
	}
	return fmt.Errorf("more than one virtual cluster is named %q: say which with --cluster and --namespace", name)
}

func checkUseOutput(f useFlags) error {
	if f.output != "" && !f.print {
		return fmt.Errorf("--output %s: only with --print (without it, the kubeconfig is merged, nothing printed)", f.output)
	}
	return checkOutput(f.output)
}

func orNothing(names []string) string {
	if len(names) == 0 {
		return "nothing (see its scope: keygate list clusters)"
	}
	return strings.Join(names, ", ")
}

// write completes c for the target at path of the edge and merges it (or prints it).
func (o *options) write(c Context, path string, f useFlags) error {
	l, err := o.login()
	if err != nil {
		return err
	}
	c.Server = strings.TrimSuffix(l.Server, "/") + path
	c.CertificateAuthorityData, c.InsecureSkipTLSVerify = l.CertificateAuthorityData, l.InsecureSkipTLSVerify
	if c.Command, err = os.Executable(); err != nil {
		return err
	}
	config, err := filepath.Abs(o.configPath)
	if err != nil {
		return err
	}
	c.Args = []string{"credential", "--config", config}
	if f.print {
		return o.printKubeconfig(c, f.output)
	}
	if err := Merge(o.pathOptions(), c, f.switchContext); err != nil {
		return err
	}
	fmt.Fprintf(o.err, "Wrote context %q to %s. Try: kubectl --context %s get namespaces\n", c.Name, o.pathOptions().GetDefaultFilename(), c.Name)
	return nil
}

// printKubeconfig prints the kubeconfig of c alone, as clientcmd writes it (YAML), or as JSON.
func (o *options) printKubeconfig(c Context, output string) error {
	data, err := clientcmd.Write(*c.kubeconfig())
	if err != nil {
		return err
	}
	if output == "json" {
		if data, err = yaml.YAMLToJSON(data); err != nil {
			return err
		}
		var v any
		if err := json.Unmarshal(data, &v); err != nil {
			return err
		}
		return o.print(v, "json")
	}
	_, err = o.out.Write(data)
	return err
}
