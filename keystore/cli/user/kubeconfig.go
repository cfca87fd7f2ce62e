package user

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ExecAPIVersion is the version of the exec credential the plugin prints.
const ExecAPIVersion = "client.authentication.k8s.io/v1"

// Context is one kubeconfig context of a target of the edge.
type Context struct {
	// Name is Loft's name of the target's context: loft_<cluster>,
	// loft-vcluster_<vcluster>_<namespace>_<cluster>. Its cluster and user have the same name.
	Name string
	// Server is the target's URL at the edge.
	Server                   string
	CertificateAuthorityData []byte
	InsecureSkipTLSVerify    bool
	// Command and Args run the credential plugin (this command's `credential`).
	Command string
	Args    []string
}

// kubeconfig is a kubeconfig holding only c.
func (c Context) kubeconfig() *clientcmdapi.Config {
	cfg := clientcmdapi.NewConfig()
	c.addTo(cfg)
	cfg.CurrentContext = c.Name
	return cfg
}

// addTo puts c's cluster, user and context into cfg, replacing entries of the same names. The
// user runs the plugin: the kubeconfig never holds the key.
func (c Context) addTo(cfg *clientcmdapi.Config) {
	cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.CertificateAuthorityData, InsecureSkipTLSVerify: c.InsecureSkipTLSVerify}
	cfg.AuthInfos[c.Name] = &clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
		APIVersion: ExecAPIVersion, Command: c.Command, Args: c.Args,
		InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
		InstallHint:     "keygate is the CLI of the keygate edge: `make build` puts it in bin/ (see the README)",
	}}
	cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: c.Name}
}

// Merge writes c into the kubeconfig that access names (KUBECONFIG's list, or --kubeconfig, as
// kubectl reads them), keeping every other entry, and makes it the current context only when
// switchContext is set. clientcmd.ModifyConfig locks each file it writes (<file>.lock) as
// kubectl does, and writes new entries to the first file of the list; an existing file keeps
// its mode. The files stay locked from the read to the write: ModifyConfig's own lock covers
// only its write, and it deletes whatever the file has that the config it is given lacks, so
// two runs that each read before the other wrote would drop one context.
func Merge(access clientcmd.ConfigAccess, c Context, switchContext bool) error {
	unlock, err := lockKubeconfigs(access)
	if err != nil {
		return err
	}
	defer unlock()
	cfg, err := access.GetStartingConfig()
	if err != nil {
		return fmt.Errorf("read kubeconfig: %w", err)
	}
	c.addTo(cfg)
	if switchContext {
		cfg.CurrentContext = c.Name
	}
	if err := modifyLocked(access, *cfg); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// modifyLocked is clientcmd.ModifyConfig with its lock off: lockKubeconfigs holds the same locks.
func modifyLocked(access clientcmd.ConfigAccess, cfg clientcmdapi.Config) error {
	lockMu.Lock()
	defer lockMu.Unlock()
	was := clientcmd.UseModifyConfigLock
	clientcmd.UseModifyConfigLock = false
	defer func() { clientcmd.UseModifyConfigLock = was }()
	return clientcmd.ModifyConfig(access, cfg, false)
}

// lockMu guards clientcmd.UseModifyConfigLock, a package variable, within this process.
var lockMu sync.Mutex

// lockKubeconfigs takes the lock files clientcmd takes (<file>.lock, created exclusively, in
// sorted order so that two writers cannot deadlock), waiting for other writers (kubectl
// config, another keygate) rather than failing at once as kubectl does.
func lockKubeconfigs(access clientcmd.ConfigAccess) (unlock func(), err error) {
	files := slices.Clone(access.GetLoadingPrecedence())
	sort.Strings(files)
	var held []string
	unlock = func() {
		for _, f := range held {
			os.Remove(f)
		}
	}
	for _, f := range files {
		lock := f + ".lock"
		if err := waitForLock(lock); err != nil {
			unlock()
			return nil, err
		}
		held = append(held, lock)
	}
	return unlock, nil
}

// lockWait bounds the wait for another writer's lock: a lock file left by a killed writer
// must end in an error that says which file to remove, not a hang.
const lockWait = 30 * time.Second

func waitForLock(lock string) error {
	if err := os.MkdirAll(filepath.Dir(lock), 0o755); err != nil {
		return err
	}
	deadline := time.Now().Add(lockWait)
	for {
		f, err := os.OpenFile(lock, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			return f.Close()
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kubeconfig is locked by %s (another kubectl or keygate writing it); if none is running, remove the file", lock)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
