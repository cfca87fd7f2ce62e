package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metainternalversion "k8s.io/apimachinery/pkg/apis/meta/internalversion"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/apiserver/pkg/storage/names"

	"github.com/keygate-dev/keygate/keystore/accesskey"
	v1 "github.com/keygate-dev/keygate/keystore/apis/management/v1"
	"github.com/keygate-dev/keygate/keystore/apis/management/validation"
	"github.com/keygate-dev/keygate/keystore/store"
)

// Keys is the key store (store.Store in production).
type Keys interface {
	CreateObject(ctx context.Context, k *v1.OwnedAccessKey) (string, *v1.OwnedAccessKey, error)
	CreateWithinQuota(ctx context.Context, k *v1.OwnedAccessKey, q store.Quota) (string, *v1.OwnedAccessKey, []string, error)
	Get(ctx context.Context, name string) (*v1.OwnedAccessKey, error)
	Lookup(ctx context.Context, plain string) (*v1.OwnedAccessKey, error)
	ListWithVersion(ctx context.Context) ([]*v1.OwnedAccessKey, string, error)
	Update(ctx context.Context, k *v1.OwnedAccessKey) (*v1.OwnedAccessKey, error)
	DeleteObject(ctx context.Context, name, resourceVersion string) (*v1.OwnedAccessKey, error)
	Watch(ctx context.Context, resourceVersion string, handle func(store.Event) error) error
}

// Options configure the storage.
type Options struct {
	// AdminGroup's members see and manage every key.
	AdminGroup string
	// Teams finds the teams of a user; nil means users are in no team.
	Teams TeamsFunc
	// OwnerUID finds the UID of a user in the user store, to record on the keys made for them
	// (accesskey.OwnerUIDAnnotation); nil means no user is in the store.
	OwnerUID OwnerUIDFunc
	// Quotas bound what keys may be created (quota.go); zero values bound nothing.
	Quotas
}

// OwnerUIDFunc returns the UID of the user store's user named name, "" when the store has no
// such user (a user of an external identity provider) or the user has no UID.
type OwnerUIDFunc func(ctx context.Context, name string) (string, error)

// CreatedByAnnotation records who created a key.
const CreatedByAnnotation = "keygate.dev/created-by"

var resource = v1.Resource("ownedaccesskeys")
var kind = v1.SchemeGroupVersion.WithKind("OwnedAccessKey").GroupKind()

// AccessKeys serves ownedaccesskeys.
type AccessKeys struct {
	keys Keys
	opts Options
	rest.TableConvertor
}

// NewAccessKeys returns the storage of ownedaccesskeys.
func NewAccessKeys(keys Keys, opts Options) *AccessKeys {
	return &AccessKeys{keys: keys, opts: opts, TableConvertor: tableConvertor{}}
}

var (
	_ rest.Storage              = &AccessKeys{}
	_ rest.Scoper               = &AccessKeys{}
	_ rest.SingularNameProvider = &AccessKeys{}
	_ rest.Creater              = &AccessKeys{}
	_ rest.Getter               = &AccessKeys{}
	_ rest.Lister               = &AccessKeys{}
	_ rest.Updater              = &AccessKeys{}
	_ rest.GracefulDeleter      = &AccessKeys{}
	_ rest.Watcher              = &AccessKeys{}
)

func (*AccessKeys) New() runtime.Object     { return &v1.OwnedAccessKey{} }
func (*AccessKeys) NewList() runtime.Object { return &v1.OwnedAccessKeyList{} }
func (*AccessKeys) Destroy()                {}
func (*AccessKeys) NamespaceScoped() bool   { return false }
func (*AccessKeys) GetSingularName() string { return "ownedaccesskey" }
func (a *AccessKeys) caller(ctx context.Context) (Caller, error) {
	c, err := callerFrom(ctx, a.opts.AdminGroup, a.opts.Teams)
	if err != nil {
		return c, callerError(err)
	}
	return c, nil
}

// get returns the key named name if the caller owns it. A key the caller does not own is "not
// found": its existence is nobody else's business.
func (a *AccessKeys) get(ctx context.Context, c Caller, name string) (*v1.OwnedAccessKey, error) {
	k, err := a.keys.Get(ctx, name)
	if errors.Is(err, store.ErrNotFound) || (err == nil && !c.Owns(k)) {
		return nil, apierrors.NewNotFound(resource, name)
	}
	if err != nil {
		return nil, storeError(err)
	}
	return k, nil
}

// Get returns one key, never its plain key.
func (a *AccessKeys) Get(ctx context.Context, name string, _ *metav1.GetOptions) (runtime.Object, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := a.get(ctx, c, name)
	if err != nil {
		return nil, err
	}
	return accesskey.RedactConnectorData(k), nil
}

// List returns the caller's keys (every key for admins), filtered by label and field
// selectors (metadata.name).
func (a *AccessKeys) List(ctx context.Context, options *metainternalversion.ListOptions) (runtime.Object, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	keys, rv, err := a.keys.ListWithVersion(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	match, err := matcher(options)
	if err != nil {
		return nil, err
	}
	list := &v1.OwnedAccessKeyList{ListMeta: metav1.ListMeta{ResourceVersion: rv}, Items: []v1.OwnedAccessKey{}}
	for _, k := range keys {
		if c.Owns(k) && match(k) {
			list.Items = append(list.Items, *accesskey.RedactConnectorData(k))
		}
	}
	return list, nil
}

// matcher turns list options into a predicate on keys (metaMatcher).
func matcher(options *metainternalversion.ListOptions) (func(*v1.OwnedAccessKey) bool, error) {
	match, err := metaMatcher(options)
	if err != nil {
		return nil, err
	}
	return func(k *v1.OwnedAccessKey) bool { return match(&k.ObjectMeta) }, nil
}

// Create stores a new key and answers with its plain key, the only time it is ever shown. An
// owner left empty by a non-admin defaults to the caller.
func (a *AccessKeys) Create(ctx context.Context, obj runtime.Object, createValidation rest.ValidateObjectFunc, options *metav1.CreateOptions) (runtime.Object, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	k, err := asAccessKey(obj)
	if err != nil {
		return nil, err
	}
	prepareNew(c, k)
	recordDisabler(c, k, nil)
	if errs := validation.ValidateOwnedAccessKey(k); len(errs) > 0 {
		return nil, apierrors.NewInvalid(kind, k.Name, errs)
	}
	if err := a.mayWrite(ctx, c, k, nil); err != nil {
		return nil, err
	}
	if err := a.checkTTL(c, k, nil); err != nil {
		return nil, err
	}
	if err := a.recordOwner(ctx, k); err != nil {
		return nil, err
	}
	if createValidation != nil {
		if err := createValidation(ctx, k); err != nil {
			return nil, err
		}
	}
	if dryRun(options.DryRun) {
		k.Spec.Key = "" // nothing is generated on a dry run
		return k, nil
	}
	plain, stored, _, err := a.keys.CreateWithinQuota(ctx, k, a.quota(k, time.Now()))
	if errors.Is(err, store.ErrQuota) {
		return nil, a.quotaError(k)
	}
	if err != nil {
		return nil, createError(k, err)
	}
	out := accesskey.RedactConnectorData(stored.DeepCopy())
	out.Spec.Key = plain
	return out, nil
}

// asAccessKey is a copy of obj, which the caller's request decoded, to change freely.
func asAccessKey(obj runtime.Object) (*v1.OwnedAccessKey, error) {
	k, ok := obj.(*v1.OwnedAccessKey)
	if !ok {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("not an OwnedAccessKey: %T", obj))
	}
	return k.DeepCopy(), nil
}

// prepareNew fills in what a new key gets from the server rather than the client: a name from
// generateName, c as the owner when none is given, the server's fields (strategy.go), the
// created-by annotation, and no plain key in kubectl's last-applied annotation.
func prepareNew(c Caller, k *v1.OwnedAccessKey) {
	if k.Name == "" && k.GenerateName != "" {
		k.Name = names.SimpleNameGenerator.GenerateName(k.GenerateName)
	}
	if k.Spec.User == "" && k.Spec.Team == "" {
		if c.User != "" {
			k.Spec.User = c.User
		} else {
			k.Spec.Team = c.Team
		}
	}
	resetServerFields(k)
	// Who created a key matters when an admin creates one for someone else. It also means a
	// key always has annotations, so a JSON patch that adds one (as Loft's documentation shows)
	// finds /metadata/annotations.
	if k.Annotations == nil {
		k.Annotations = map[string]string{}
	}
	if c.User != "" {
		k.Annotations[CreatedByAnnotation] = c.User
	} else {
		k.Annotations[CreatedByAnnotation] = TeamUserPrefix + c.Team
	}
	stripKeyFromLastApplied(k)
}

// recordOwner sets, from the user store and never from the client, the UID of the store user
// k is made for, or removes any when k is a team's or an external identity's: extauthz refuses
// the key once the store's user of that name is not this one (accesskey.CheckOwner).
func (a *AccessKeys) recordOwner(ctx context.Context, k *v1.OwnedAccessKey) error {
	uid := ""
	if k.Spec.User != "" && a.opts.OwnerUID != nil {
		var err error
		if uid, err = a.opts.OwnerUID(ctx, k.Spec.User); err != nil {
			return storeError(err)
		}
	}
	accesskey.SetOwnerUID(k, uid)
	return nil
}

// keepOwner gives k, an update of cur, cur's owner UID whatever the client sent: the same user
// stays the same owner. A key given to another user records that user, as at creation.
func (a *AccessKeys) keepOwner(ctx context.Context, k, cur *v1.OwnedAccessKey) error {
	if k.Spec.User != cur.Spec.User || k.Spec.Team != cur.Spec.Team {
		return a.recordOwner(ctx, k)
	}
	accesskey.SetOwnerUID(k, accesskey.OwnerUID(cur))
	return nil
}

// createError is the API error of a failed CreateObject. A supplied key that is taken is an
// invalid spec.key, not "already exists", and is never echoed.
func createError(k *v1.OwnedAccessKey, err error) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(resource, k.Name, err)
	case errors.Is(err, store.ErrAlreadyExists) && k.Spec.Key != "":
		return apierrors.NewInvalid(kind, k.Name, field.ErrorList{field.Invalid(field.NewPath("spec", "key"), "(redacted)", "choose another key")})
	case errors.Is(err, store.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(resource, k.Name)
	case errors.Is(err, store.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	}
	return storeError(err)
}

// mayWrite refuses what c may not write: keys of others, groups c lacks, what only an admin
// may change in an existing key (cur; nil on a create), and keys wider than the scope of the
// request's own key (widen.go).
func (a *AccessKeys) mayWrite(ctx context.Context, c Caller, k, cur *v1.OwnedAccessKey) error {
	if why := c.MayHold(k); why != "" {
		return apierrors.NewForbidden(resource, k.Name, errors.New(why))
	}
	if why := providerOwned(k, cur); why != "" {
		return apierrors.NewForbidden(resource, k.Name, errors.New(why))
	}
	if why := parentIsKeygates(k, cur); why != "" {
		return apierrors.NewForbidden(resource, k.Name, errors.New(why))
	}
	if cur != nil {
		if why := c.mayChange(k, cur); why != "" {
			return apierrors.NewForbidden(resource, k.Name, errors.New(why))
		}
	}
	return a.withinRequestKey(ctx, c, k, cur)
}

// Update changes a key the caller owns; with forceAllowCreate (server-side apply of a new
// object) it creates one.
func (a *AccessKeys) Update(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, updateValidation rest.ValidateObjectUpdateFunc, forceAllowCreate bool, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, false, err
	}
	cur, err := a.get(ctx, c, name)
	if apierrors.IsNotFound(err) && forceAllowCreate {
		return createOnUpdate(ctx, a, objInfo, createValidation, options)
	}
	if err != nil {
		return nil, false, err
	}
	k, err := a.updated(ctx, name, objInfo, cur)
	if err != nil {
		return nil, false, err
	}
	recordDisabler(c, k, cur)
	if errs := validation.ValidateOwnedAccessKeyUpdate(k, cur); len(errs) > 0 {
		return nil, false, apierrors.NewInvalid(kind, name, errs)
	}
	if err := a.mayWrite(ctx, c, k, cur); err != nil {
		return nil, false, err
	}
	if err := a.checkTTL(c, k, cur); err != nil {
		return nil, false, err
	}
	if err := a.keepOwner(ctx, k, cur); err != nil {
		return nil, false, err
	}
	if updateValidation != nil {
		if err := updateValidation(ctx, k, cur); err != nil {
			return nil, false, err
		}
	}
	if dryRun(options.DryRun) {
		return accesskey.RedactConnectorData(k), false, nil
	}
	out, err := a.keys.Update(ctx, k)
	if err != nil {
		return nil, false, updateError(name, err)
	}
	return accesskey.RedactConnectorData(out), false, nil
}

// createOnUpdate is an Update of an object that does not exist, as server-side apply of a new
// object makes: a Create by storage.
func createOnUpdate(ctx context.Context, storage rest.Creater, objInfo rest.UpdatedObjectInfo, createValidation rest.ValidateObjectFunc, options *metav1.UpdateOptions) (runtime.Object, bool, error) {
	obj, err := objInfo.UpdatedObject(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	created, err := storage.Create(ctx, obj, createValidation, &metav1.CreateOptions{DryRun: options.DryRun, FieldManager: options.FieldManager})
	return created, err == nil, err
}

// updated is the key cur becomes, before validation: the client's object, with what the client
// does not decide (status, an unchanged key, the plain key in kubectl's annotation) put right.
func (a *AccessKeys) updated(ctx context.Context, name string, objInfo rest.UpdatedObjectInfo, cur *v1.OwnedAccessKey) (*v1.OwnedAccessKey, error) {
	obj, err := objInfo.UpdatedObject(ctx, cur)
	if err != nil {
		return nil, err
	}
	k, err := asAccessKey(obj)
	if err != nil {
		return nil, err
	}
	if k.Name != name {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name in the object (%q) differs from the name in the URL (%q)", k.Name, name))
	}
	if k.ResourceVersion == "" {
		k.ResourceVersion = cur.ResourceVersion // an unconditional update
	}
	// `kubectl apply` of a manifest with spec.key sends the key on every apply (the stored
	// object has none to compare with): the object's own key is no change of key.
	if k.Spec.Key != "" {
		same, err := a.keys.Lookup(ctx, k.Spec.Key)
		switch {
		case err == nil && same.UID == cur.UID:
			k.Spec.Key = ""
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return nil, storeError(err)
		}
	}
	// status.lastActivity, the age and the edge's annotations are the server's.
	carryServerFields(k, cur)
	stripKeyFromLastApplied(k)
	return k, nil
}

// updateError is the API error of a failed store Update.
func updateError(name string, err error) error {
	switch {
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(resource, name, errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	case errors.Is(err, store.ErrNotFound):
		return apierrors.NewNotFound(resource, name)
	case errors.Is(err, store.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	}
	return storeError(err)
}

// Delete removes a key the caller owns, honouring uid and resourceVersion preconditions.
func (a *AccessKeys) Delete(ctx context.Context, name string, deleteValidation rest.ValidateObjectFunc, options *metav1.DeleteOptions) (runtime.Object, bool, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, false, err
	}
	cur, err := a.get(ctx, c, name)
	if err != nil {
		return nil, false, err
	}
	if err := a.withinRequestKey(ctx, c, cur); err != nil {
		return nil, false, err
	}
	var rv string
	if options != nil && options.Preconditions != nil {
		p := options.Preconditions
		if p.UID != nil && *p.UID != cur.UID {
			return nil, false, apierrors.NewConflict(resource, name, fmt.Errorf("precondition failed: uid %s, the object has %s", *p.UID, cur.UID))
		}
		if p.ResourceVersion != nil {
			rv = *p.ResourceVersion
		}
	}
	if deleteValidation != nil {
		if err := deleteValidation(ctx, cur); err != nil {
			return nil, false, err
		}
	}
	if options != nil && dryRun(options.DryRun) {
		return accesskey.RedactConnectorData(cur), true, nil
	}
	out, err := a.keys.DeleteObject(ctx, name, rv)
	switch {
	case errors.Is(err, store.ErrConflict):
		return nil, false, apierrors.NewConflict(resource, name, fmt.Errorf("precondition failed: resourceVersion %s is not the object's", rv))
	case errors.Is(err, store.ErrNotFound):
		return nil, false, apierrors.NewNotFound(resource, name)
	case err != nil:
		return nil, false, storeError(err)
	}
	return accesskey.RedactConnectorData(out), true, nil
}

func dryRun(values []string) bool { return len(values) > 0 }

// Watch streams changes to the caller's keys. Without a resourceVersion (or "0") it starts with
// an ADDED event per current key, as Kubernetes does; with sendInitialEvents it ends those with
// the initial-events-end bookmark.
func (a *AccessKeys) Watch(ctx context.Context, options *metainternalversion.ListOptions) (watch.Interface, error) {
	c, err := a.caller(ctx)
	if err != nil {
		return nil, err
	}
	match, err := matcher(options)
	if err != nil {
		return nil, err
	}
	rv := ""
	initial := false
	if options != nil {
		rv = options.ResourceVersion
		initial = options.SendInitialEvents != nil && *options.SendInitialEvents
	}
	var current []*v1.OwnedAccessKey
	if rv == "" || rv == "0" || initial {
		keys, listRV, err := a.keys.ListWithVersion(ctx)
		if err != nil {
			return nil, storeError(err)
		}
		current, rv = keys, listRV
	}
	wctx, cancel := context.WithCancel(ctx)
	s := &keyStream{
		ctx:     wctx,
		ch:      make(chan watch.Event, 100),
		visible: func(k *v1.OwnedAccessKey) bool { return c.Owns(k) && match(k) },
	}
	w := watch.NewProxyWatcher(s.ch)
	go func() {
		defer close(s.ch)
		defer cancel()
		go func() {
			select {
			case <-w.StopChan():
				cancel()
			case <-wctx.Done():
			}
		}()
		s.run(a.keys, current, rv, initial)
	}()
	return w, nil
}

// keyStream is one watch's events on their way to the client: only the keys it may see, until
// the client stops the watch (or its request ends, which ends ctx).
type keyStream struct {
	ctx     context.Context
	ch      chan watch.Event
	visible func(*v1.OwnedAccessKey) bool
}

// send delivers ev, or reports false when the watch ended first. A key never leaves with its
// connectorData.
func (s *keyStream) send(ev watch.Event) bool {
	if k, ok := ev.Object.(*v1.OwnedAccessKey); ok {
		accesskey.RedactConnectorData(k)
	}
	select {
	case s.ch <- ev:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// run sends the current keys (ADDED), the initial-events-end bookmark when asked for, then
// every change after rv. A stale or unknown version reaches the client as an ERROR event with
// the Status (410 for one too old), as from kube-apiserver.
func (s *keyStream) run(keys Keys, current []*v1.OwnedAccessKey, rv string, initial bool) {
	for _, k := range current {
		if s.visible(k) && !s.send(watch.Event{Type: watch.Added, Object: k}) {
			return
		}
	}
	if initial {
		bm := &v1.OwnedAccessKey{ObjectMeta: metav1.ObjectMeta{ResourceVersion: rv, Annotations: map[string]string{metav1.InitialEventsAnnotationKey: "true"}}}
		if !s.send(watch.Event{Type: watch.Bookmark, Object: bm}) {
			return
		}
	}
	err := keys.Watch(s.ctx, rv, func(ev store.Event) error {
		if !s.visible(ev.Key) {
			return nil
		}
		if !s.send(watch.Event{Type: ev.Type, Object: ev.Key}) {
			return s.ctx.Err()
		}
		return nil
	})
	if err != nil && s.ctx.Err() == nil {
		s.send(watch.Event{Type: watch.Error, Object: &watchStatus(err, rv).ErrStatus})
	}
}

func watchStatus(err error, rv string) *apierrors.StatusError {
	switch {
	case errors.Is(err, store.ErrExpired):
		return apierrors.NewResourceExpired(fmt.Sprintf("too old resource version: %s", rv))
	case errors.Is(err, store.ErrTooNew):
		return apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %s", rv), 1)
	case errors.Is(err, store.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	}
	return storeError(err)
}

// stripKeyFromLastApplied removes spec.key from kubectl's last-applied-configuration
// annotation: `kubectl apply` of a manifest that carries a key would otherwise store the plain
// key in an annotation that get and list show to anyone who can read the object.
func stripKeyFromLastApplied(k *v1.OwnedAccessKey) {
	const ann = "kubectl.kubernetes.io/last-applied-configuration"
	data, ok := k.Annotations[ann]
	if !ok {
		return
	}
	var obj map[string]any
	if err := json.Unmarshal([]byte(data), &obj); err != nil {
		delete(k.Annotations, ann) // unreadable: it could hold anything
		return
	}
	spec, _ := obj["spec"].(map[string]any)
	if _, has := spec["key"]; !has {
		return
	}
	delete(spec, "key")
	out, err := json.Marshal(obj)
	if err != nil {
		delete(k.Annotations, ann)
		return
	}
	k.Annotations[ann] = string(out)
}
