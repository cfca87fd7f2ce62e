// Package manifests holds no code: its tests check the Helm chart (helm/keygate) and the
// kustomize base generated from it (kustomize/), with the real helm, kubectl and kube-apiserver.
package manifests
