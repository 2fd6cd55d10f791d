<?php
// Router for PHP's built-in web server, installed by Flynn's PHP buildpack:
//   php -S 0.0.0.0:$PORT -t DOCROOT .flynn/php/router.php
// Existing files are served (PHP scripts run); dotfiles, vendor/ and the
// app's metadata files are hidden; any other path runs DOCROOT/index.php
// (front controller), with PATH_INFO set to the path.
$root = rtrim($_SERVER['DOCUMENT_ROOT'], '/');
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
$deny = function () {
    http_response_code(404);
    header('Content-Type: text/plain');
    echo "Not Found\n";
    return true;
};
foreach (explode('/', $path) as $seg) {
    if ($seg !== '' && $seg[0] === '.') {
        return $deny();
    }
}
if (preg_match('#^/(vendor|composer\.(json|lock)|Procfile|auth\.json)(/|$)#', $path)) {
    return $deny();
}
$file = $root . $path;
if ($path !== '/' && is_file($file)) {
    return false;
}
if (is_dir($file) && (is_file(rtrim($file, '/') . '/index.php') || is_file(rtrim($file, '/') . '/index.html'))) {
    return false;
}
$index = $root . '/index.php';
if (!is_file($index)) {
    return false;
}
$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $index;
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['PATH_INFO'] = $path;
chdir($root);
require $index;
return true;
