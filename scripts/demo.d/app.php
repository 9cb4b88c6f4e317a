<?php
// app.php: the "web app" of scripts/demo. Each request does a little real work with a few MB,
// like rendering a page from a query result, and answers one line.
$rows = [];
for ($i = 0; $i < 20000; $i++) {          // ~2-3 MB of PHP arrays
    $rows[] = ['id' => $i, 'name' => "item $i", 'price' => $i * 0.01];
}
$page = str_repeat('x', 2 * 1024 * 1024); // a 2 MB response buffer
$sum = 0.0;
foreach ($rows as $r) {
    $sum += $r['price'];
}
printf("ok pid=%d sum=%.2f hash=%s peak=%dKB\n",
    getmypid(), $sum, substr(md5($page), 0, 8), memory_get_peak_usage(true) / 1024);
