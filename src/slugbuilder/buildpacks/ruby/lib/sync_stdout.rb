# loaded through RUBYOPT by the Ruby buildpack while it builds
$stdout.sync = true
$stderr.sync = true
