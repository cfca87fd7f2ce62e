package auth

// LoginKeyName is the name of a new login key of user: login-<user>-<5 random characters>, a
// DNS-1123 label for any user name (single sign-on users' names may hold '@', '.' or ':').
func LoginKeyName(user string) string { return loginKeyName(user) }
